//! Pieces more than one page uses: the chart and the per-frame batching of what the
//! network delivers.
//!
//! - [`chart`]: charts with axes and a readout, time windows and the histories they draw.
//! - [`markup`]: a plot as SVG and HTML strings (grid, lines, labels, readout).
//! - [`plot`]: the pure geometry of a chart: lines, steps, readout values.
//! - [`scale`]: the pure arithmetic of axes, ticks and value formats.
//! - [`FrameBatch`]: work gathered between animation frames and applied once per frame.

pub mod chart;
pub mod markup;
pub mod plot;
pub mod scale;

use leptos::prelude::*;

/// Work gathered between animation frames and applied once per frame: a burst of
/// messages costs one signal update per frame, not one per message.
///
/// `P` is the gathered work (a list of messages, a map by device); [`Self::add`] puts
/// into it, and the first addition after a frame schedules the frame callback that
/// takes it all.
#[derive(Debug)]
pub struct FrameBatch<P: Send + Sync + 'static> {
    /// What was added since the last frame.
    pending: StoredValue<P>,
    /// Whether a frame callback is scheduled.
    scheduled: StoredValue<bool>,
}

impl<P: Send + Sync + 'static> Clone for FrameBatch<P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: Send + Sync + 'static> Copy for FrameBatch<P> {}

impl<P: Default + Send + Sync + 'static> FrameBatch<P> {
    /// An empty batch, owned by the reactive owner it is made under.
    pub fn new() -> Self {
        Self {
            pending: StoredValue::new(P::default()),
            scheduled: StoredValue::new(false),
        }
    }

    /// Adds to the batch with `add`; if no frame callback is scheduled yet, schedules
    /// `apply` to take the whole batch at the next animation frame.
    pub fn add(self, add: impl FnOnce(&mut P), apply: impl FnOnce(P) + 'static) {
        self.pending.update_value(add);
        if !self.scheduled.get_value() {
            self.scheduled.set_value(true);
            request_animation_frame(move || {
                self.scheduled.set_value(false);
                if let Some(batch) = self.pending.try_update_value(std::mem::take) {
                    apply(batch);
                }
            });
        }
    }
}

impl<P: Default + Send + Sync + 'static> Default for FrameBatch<P> {
    fn default() -> Self {
        Self::new()
    }
}
