//! The arithmetic of a readable chart, pure and unit-tested natively: a value axis with
//! "nice" ticks (1, 2 or 5 × 10ⁿ) and a range that neither clips nor magnifies noise, a
//! time axis with ticks on round clock times, and the formats of values (decimals that
//! follow the tick step, integers as integers, bytes in KiB/MiB, rates per second).

/// How a chart's values are written on its axis and in its readout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// A measurement with a unit (may be empty): decimals follow the axis step.
    Decimal(String),
    /// A count: whole numbers only (the axis never steps by less than 1).
    Integer(String),
    /// A size in bytes, written in B, KiB, MiB or GiB.
    Bytes,
    /// A rate: the unit is per second (e.g. `msg/s`).
    PerSecond(String),
}

impl Format {
    /// The unit written after a value (`B` and its multiples are chosen per value).
    pub fn unit(&self) -> &str {
        match self {
            Self::Decimal(unit) | Self::Integer(unit) | Self::PerSecond(unit) => unit,
            Self::Bytes => "B",
        }
    }

    /// The value axis for values in `min..=max` (see [`Axis::new`]): whole steps for
    /// integers, steps of a round number of KiB or MiB for bytes.
    pub fn axis(&self, min: f64, max: f64, zero: bool) -> Axis {
        match self {
            Self::Bytes => {
                let (divisor, _) = byte_unit(min.abs().max(max.abs()));
                let axis = Axis::new(min / divisor, max / divisor, zero, false);
                Axis {
                    lo: axis.lo * divisor,
                    hi: axis.hi * divisor,
                    step: axis.step * divisor,
                    ticks: axis.ticks.iter().map(|t| t * divisor).collect(),
                }
            }
            Self::Integer(_) => Axis::new(min, max, zero, true),
            Self::Decimal(_) | Self::PerSecond(_) => Axis::new(min, max, zero, false),
        }
    }

    /// `value` written for a readout: a few significant decimals (none for integers).
    pub fn value(&self, value: f64) -> String {
        match self {
            Self::Bytes => bytes(value),
            Self::Integer(_) => with_unit(format!("{value:.0}"), self.unit()),
            Self::Decimal(_) | Self::PerSecond(_) => {
                with_unit(trim(value, readout_decimals(value)), self.unit())
            }
        }
    }

    /// A tick label at `value` on `axis` (every tick of an axis in the same unit).
    pub fn tick(&self, value: f64, axis: &Axis) -> String {
        let step = axis.step;
        match self {
            Self::Bytes => {
                let (divisor, unit) = byte_unit(axis.hi.abs().max(axis.lo.abs()));
                let decimals = decimals_for(step / divisor);
                with_unit(format!("{:.*}", decimals, value / divisor), unit)
            }
            Self::Integer(_) => format!("{value:.0}"),
            Self::Decimal(_) | Self::PerSecond(_) => format!("{:.*}", decimals_for(step), value),
        }
    }
}

fn with_unit(number: String, unit: &str) -> String {
    if unit.is_empty() {
        number
    } else if unit == "%" || unit == "°C" || unit == "°F" {
        format!("{number}{unit}")
    } else {
        format!("{number} {unit}")
    }
}

/// How many decimals a readout of `value` gets: three significant digits, at most 3.
fn readout_decimals(value: f64) -> usize {
    let magnitude = value.abs();
    if magnitude >= 100.0 || magnitude == 0.0 {
        1
    } else if magnitude >= 10.0 {
        2
    } else {
        3
    }
}

/// `value` with `decimals`, without trailing zeros after the point (`21.50` → `21.5`).
fn trim(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// The decimals that tell ticks `step` apart: `0.25` → 2, `5` → 0.
pub fn decimals_for(step: f64) -> usize {
    if !step.is_finite() || step <= 0.0 || step >= 1.0 {
        return 0;
    }
    // A small tolerance: 0.1 is not exactly representable.
    let decimals = (-step.log10() - 1e-9).ceil();
    let decimals = decimals.clamp(0.0, 9.0) as usize;
    // 0.25 needs two decimals, 0.2 one: check the step written with `decimals`.
    if ((step * 10f64.powi(decimals as i32)).round() - step * 10f64.powi(decimals as i32)).abs()
        > 1e-6
    {
        decimals + 1
    } else {
        decimals
    }
}

/// The divisor and unit that write `magnitude` bytes with at most four digits.
fn byte_unit(magnitude: f64) -> (f64, &'static str) {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut divisor = 1.0;
    let mut index = 0;
    while magnitude >= divisor * 1024.0 && index + 1 < UNITS.len() {
        divisor *= 1024.0;
        index += 1;
    }
    (divisor, UNITS[index])
}

/// `value` bytes, human-readable: `512 B`, `1.5 KiB`, `12.3 MiB`.
pub fn bytes(value: f64) -> String {
    let (divisor, unit) = byte_unit(value.abs());
    if divisor == 1.0 {
        format!("{value:.0} B")
    } else {
        let scaled = value / divisor;
        let decimals = if scaled.abs() >= 100.0 { 0 } else { 1 };
        format!("{scaled:.decimals$} {unit}")
    }
}

/// A whole number with thousands separated by a thin space: `1 234 567`.
pub fn integer(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    if value < 0.0 && digits != "0" {
        format!("-{out}")
    } else {
        out
    }
}

/// The nice step (1, 2, 2.5 or 5 × 10ⁿ) that cuts `span` into about `ticks` intervals.
pub fn nice_step(span: f64, ticks: usize) -> f64 {
    if !span.is_finite() || span <= 0.0 {
        return 1.0;
    }
    let raw = span / ticks.max(1) as f64;
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 2.5 {
        2.5
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// A value axis: its bounds and the ticks on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// The bottom of the chart.
    pub lo: f64,
    /// The top of the chart.
    pub hi: f64,
    /// The distance between ticks.
    pub step: f64,
    /// The ticks, bottom to top, multiples of `step` within `lo..=hi`.
    pub ticks: Vec<f64>,
}

/// Ticks a value axis aims for.
const VALUE_TICKS: usize = 5;
/// The smallest span an axis shows, relative to the values' magnitude: a humidity
/// wandering between 51.6 and 53.0 % is drawn as the small change it is, not as a
/// full-height swing.
const MIN_RELATIVE_SPAN: f64 = 0.1;

impl Axis {
    /// The axis for values in `min..=max`: padded by a tenth of the span on each side,
    /// at least [`MIN_RELATIVE_SPAN`] of the values' magnitude tall, widened to whole
    /// steps, never below zero for values that are all ≥ 0; with `zero`, it includes
    /// zero. `integer` axes step by whole numbers.
    pub fn new(min: f64, max: f64, zero: bool, integer: bool) -> Self {
        let (mut min, mut max) = if min <= max { (min, max) } else { (max, min) };
        if zero {
            min = min.min(0.0);
            max = max.max(0.0);
        }
        let magnitude = min.abs().max(max.abs());
        let span = (max - min) * 1.2;
        let floor = if integer { 2.0 } else { f64::MIN_POSITIVE };
        let wanted = span
            .max(magnitude * MIN_RELATIVE_SPAN)
            .max(floor)
            .max(if magnitude == 0.0 { 1.0 } else { 0.0 });
        let middle = (min + max) / 2.0;
        let mut lo = middle - wanted / 2.0;
        let mut hi = middle + wanted / 2.0;
        if min >= 0.0 && lo < 0.0 {
            hi -= lo;
            lo = 0.0;
        } else if max <= 0.0 && hi > 0.0 {
            lo -= hi;
            hi = 0.0;
        }
        let mut step = nice_step(hi - lo, VALUE_TICKS);
        if integer {
            step = step.max(1.0).round();
        }
        let lo = (lo / step).floor() * step;
        let hi = (hi / step).ceil() * step;
        let count = ((hi - lo) / step).round() as usize;
        let ticks = (0..=count).map(|i| lo + i as f64 * step).collect();
        Self {
            lo,
            hi,
            step,
            ticks,
        }
    }

    /// Where `value` is, 0 at the bottom and 1 at the top.
    pub fn fraction(&self, value: f64) -> f64 {
        (value - self.lo) / (self.hi - self.lo)
    }
}

/// The time axis's tick intervals, in seconds.
const TIME_STEPS: &[u32] = &[
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
];
/// Ticks a time axis aims for at most.
const TIME_TICKS: u32 = 6;

/// Ticks of a time axis over `start_ms..=end_ms`: the smallest interval of
/// [`TIME_STEPS`] giving at most [`TIME_TICKS`] ticks, at round clock times (in the
/// time zone `offset_min` minutes east of UTC). Returns the interval (seconds) and the
/// ticks (ms).
pub fn time_ticks(start_ms: f64, end_ms: f64, offset_min: f64) -> (u32, Vec<f64>) {
    let span_secs = ((end_ms - start_ms) / 1000.0).max(1.0);
    let interval = TIME_STEPS
        .iter()
        .copied()
        .find(|s| span_secs / f64::from(*s) <= f64::from(TIME_TICKS))
        .unwrap_or(86_400);
    let step = f64::from(interval) * 1000.0;
    let offset = offset_min * 60_000.0;
    let mut tick = ((start_ms + offset) / step).ceil() * step - offset;
    let mut ticks = Vec::new();
    while tick <= end_ms {
        ticks.push(tick);
        tick += step;
    }
    (interval, ticks)
}

/// The clock time of `ms` in the time zone `offset_min` minutes east of UTC: `HH:MM`,
/// with `:SS` when `seconds`.
pub fn clock(ms: f64, offset_min: f64, seconds: bool) -> String {
    let local = ((ms + offset_min * 60_000.0) / 1000.0).floor() as i64;
    let day = local.rem_euclid(86_400);
    let (h, m, s) = (day / 3600, day % 3600 / 60, day % 60);
    if seconds {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(10.0, 4), 2.5);
        assert_eq!(nice_step(1.4, 4), 0.5);
        assert_eq!(nice_step(100.0, 4), 25.0);
        assert_eq!(nice_step(7.0, 4), 2.0);
        assert_eq!(nice_step(0.0, 4), 1.0);
        assert!((nice_step(0.03, 4) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn a_small_change_of_a_large_value_is_not_drawn_full_height() {
        // Humidity between 51.6 and 53.0 %: the axis is at least 10 % of 53 tall.
        let axis = Axis::new(51.6, 53.0, false, false);
        assert_eq!((axis.lo, axis.hi, axis.step), (48.0, 56.0, 2.0));
        let drawn = axis.fraction(53.0) - axis.fraction(51.6);
        assert!(drawn < 0.25, "the change fills {drawn} of the height");
        assert!(drawn > 0.1, "the change still shows: {drawn}");
        // Ticks are round multiples of the step, inside the bounds.
        assert_eq!(axis.ticks.first(), Some(&axis.lo));
        assert_eq!(axis.ticks.last(), Some(&axis.hi));
        for tick in &axis.ticks {
            let steps = tick / axis.step;
            assert!(
                (steps - steps.round()).abs() < 1e-9,
                "{tick} on {}",
                axis.step
            );
        }
    }

    #[test]
    fn a_large_change_fills_most_of_the_height_with_padding() {
        let axis = Axis::new(10.0, 30.0, false, false);
        assert_eq!((axis.lo, axis.hi, axis.step), (5.0, 35.0, 5.0));
        assert_eq!(axis.ticks.len(), 7);
        assert!(axis.fraction(10.0) > 0.0 && axis.fraction(30.0) < 1.0);
    }

    #[test]
    fn positive_values_never_get_a_negative_axis_and_zero_can_be_the_baseline() {
        let axis = Axis::new(0.0, 3.0, false, false);
        assert_eq!(axis.lo, 0.0);
        let axis = Axis::new(20.0, 22.0, true, false);
        assert_eq!(axis.lo, 0.0);
        assert!(axis.hi >= 22.0 && axis.hi <= 30.0, "{axis:?}");
        let axis = Axis::new(-5.0, -1.0, true, false);
        assert_eq!(axis.hi, 0.0);
    }

    #[test]
    fn a_flat_line_gets_a_range_around_it() {
        let axis = Axis::new(5.0, 5.0, false, false);
        assert!(axis.lo < 5.0 && axis.hi > 5.0, "{axis:?}");
        let axis = Axis::new(0.0, 0.0, false, false);
        assert!(axis.hi > 0.0, "{axis:?}");
    }

    #[test]
    fn integer_axes_step_by_whole_numbers() {
        let axis = Axis::new(3.0, 4.0, false, true);
        assert!(axis.step >= 1.0 && axis.step.fract() == 0.0, "{axis:?}");
        let labels: Vec<String> = axis
            .ticks
            .iter()
            .map(|t| Format::Integer(String::new()).tick(*t, &axis))
            .collect();
        assert!(labels.iter().all(|l| !l.contains('.')), "{labels:?}");
    }

    #[test]
    fn tick_labels_have_the_decimals_their_step_needs() {
        assert_eq!(decimals_for(5.0), 0);
        assert_eq!(decimals_for(0.5), 1);
        assert_eq!(decimals_for(0.25), 2);
        assert_eq!(decimals_for(0.1), 1);
        assert_eq!(decimals_for(0.02), 2);
        let percent = Format::Decimal("%".into());
        let axis = Axis {
            lo: 51.0,
            hi: 53.0,
            step: 0.5,
            ticks: Vec::new(),
        };
        assert_eq!(percent.tick(51.5, &axis), "51.5");
        assert_eq!(percent.tick(52.0, &axis), "52.0");
        assert_eq!(percent.value(52.34), "52.34%");
        assert_eq!(Format::Decimal("°C".into()).value(21.5), "21.5°C");
        assert_eq!(Format::PerSecond("msg/s".into()).value(12.0), "12 msg/s");
        assert_eq!(Format::Integer(String::new()).value(7.0), "7");
    }

    #[test]
    fn bytes_are_human_readable() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(12.3 * 1024.0 * 1024.0), "12.3 MiB");
        assert_eq!(bytes(300.0 * 1024.0 * 1024.0), "300 MiB");
        let mib = 1024.0 * 1024.0;
        let axis = Format::Bytes.axis(0.2 * mib, 2.0 * mib, false);
        let labels: Vec<String> = axis
            .ticks
            .iter()
            .map(|t| Format::Bytes.tick(*t, &axis))
            .collect();
        assert!(labels.iter().all(|l| l.ends_with(" MiB")), "{labels:?}");
        assert_eq!(labels[1], "0.5 MiB");
        assert_eq!(integer(1_234_567.0), "1\u{202f}234\u{202f}567");
        assert_eq!(integer(999.0), "999");
        assert_eq!(integer(-1000.0), "-1\u{202f}000");
    }

    #[test]
    fn time_ticks_fall_on_round_clock_times() {
        // A minute ending at 12:00:35 UTC: ticks every 10 s.
        let end = 12.0 * 3_600_000.0 + 35_000.0;
        let (interval, ticks) = time_ticks(end - 60_000.0, end, 0.0);
        assert_eq!(interval, 10);
        assert_eq!(ticks.len(), 6);
        assert_eq!(clock(ticks[0], 0.0, true), "11:59:40");
        // An hour: every 10 min, at :00, :10, ... in a zone 1 h east of UTC.
        let (interval, ticks) = time_ticks(end - 3_600_000.0, end, 60.0);
        assert_eq!(interval, 600);
        assert_eq!(clock(ticks[0], 60.0, false), "12:10");
        assert_eq!(clock(*ticks.last().expect("ticks"), 60.0, false), "13:00");
    }
}
