//! Timers that keep time in a hidden tab: [`Timer`] (one deadline, re-armable, with a
//! callback) and [`sleep`] (a future), run by a dedicated Web Worker or by `setTimeout`
//! on the client's own thread (see [`TimerMode`]).
//!
//! ```text
//!   Timer::set(delay) ──postMessage([id, ms])──► worker: setTimeout per id
//!   Timer callback   ◄──onmessage(id)──────────┘   (not throttled in hidden tabs)
//! ```
//!
//! One worker serves every timer of the page. It is started from a `blob:` URL holding
//! a few lines of JavaScript, so nothing has to be served next to the wasm module. If
//! it cannot start (a Content Security Policy without `worker-src blob:`, a browser
//! without workers) or fails later, timers run on the main thread instead: every
//! pending timer is re-armed there, none is lost.
//!
//! A timer's callback runs only once its deadline has passed: the browser may wake a
//! timer early or twice (a stale message from before a re-arm), and [`Timer`] checks
//! the clock ([`web_time::Instant`], `performance.now()`) before calling back.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_time::Instant;

use crate::options::TimerMode;
use protocol::client::SmallMap;

/// The worker: one `setTimeout` per timer id; `[id, ms]` arms (ms < 0 clears), and the
/// worker posts `id` back when the timer fires.
const WORKER_SOURCE: &str = "const t=new Map();onmessage=e=>{const[i,ms]=e.data;\
clearTimeout(t.get(i));t.delete(i);if(ms>=0)t.set(i,setTimeout(()=>{t.delete(i);\
postMessage(i)},ms))}";

#[wasm_bindgen]
extern "C" {
    // The globals, so that the client also runs inside a worker (no `window` there).
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, timeout: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(handle: &JsValue);
}

/// A re-armable one-deadline timer with a callback. Dropping it cancels it.
pub(crate) struct Timer(Rc<Inner>);

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("id", &self.0.id)
            .field("deadline", &self.0.deadline.get())
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Names the timer to the worker; never reused.
    id: u32,
    mode: TimerMode,
    callback: Box<dyn Fn()>,
    /// When the callback is due; `None`: not armed.
    deadline: Cell<Option<Instant>>,
    /// The main-thread fallback: the closure `setTimeout` calls and the pending handle.
    /// Made on first use only.
    main: RefCell<Option<MainThread>>,
}

struct MainThread {
    closure: Closure<dyn FnMut()>,
    handle: Option<JsValue>,
}

impl Timer {
    /// A timer that calls `callback` when it is due. Not armed yet.
    pub(crate) fn new(mode: TimerMode, callback: impl Fn() + 'static) -> Self {
        thread_local!(static NEXT_ID: Cell<u32> = const { Cell::new(1) });
        let id = NEXT_ID.with(|next| {
            let id = next.get();
            next.set(id.wrapping_add(1).max(1));
            id
        });
        Self(Rc::new(Inner {
            id,
            mode,
            callback: Box::new(callback),
            deadline: Cell::new(None),
            main: RefCell::new(None),
        }))
    }

    /// Arms the timer for `deadline`, replacing any earlier arming.
    pub(crate) fn set_deadline(&self, deadline: Instant) {
        self.0.deadline.set(Some(deadline));
        self.0
            .schedule(deadline.saturating_duration_since(Instant::now()));
    }

    /// Disarms the timer.
    pub(crate) fn clear(&self) {
        self.0.deadline.set(None);
        self.0.unschedule();
    }

    /// When the timer is armed for.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.0.deadline.get()
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.clear();
        Workers::forget(self.0.id);
    }
}

impl Inner {
    /// The browser woke the timer: call back if due, else wait for the rest.
    fn fire(self: &Rc<Self>) {
        let Some(deadline) = self.deadline.get() else {
            return;
        };
        let now = Instant::now();
        if now < deadline {
            self.schedule(deadline - now);
            return;
        }
        self.deadline.set(None);
        (self.callback)();
    }

    fn schedule(self: &Rc<Self>, delay: Duration) {
        // `setTimeout` takes at most 2^31 - 1 ms; a longer wait wakes early and re-arms.
        let ms = (delay.as_secs_f64() * 1000.0)
            .ceil()
            .min(f64::from(i32::MAX)) as i32;
        if self.mode == TimerMode::Worker && Workers::set(self, ms) {
            return;
        }
        let mut main = self.main.borrow_mut();
        let main = main.get_or_insert_with(|| {
            let timer = Rc::downgrade(self);
            MainThread {
                closure: Closure::new(move || {
                    if let Some(timer) = timer.upgrade() {
                        timer.fire();
                    }
                }),
                handle: None,
            }
        });
        if let Some(handle) = main.handle.take() {
            clear_timeout(&handle);
        }
        main.handle = Some(set_timeout(main.closure.as_ref().unchecked_ref(), ms));
    }

    fn unschedule(&self) {
        if self.mode == TimerMode::Worker {
            Workers::clear(self.id);
        }
        if let Some(handle) = self
            .main
            .borrow_mut()
            .as_mut()
            .and_then(|main| main.handle.take())
        {
            clear_timeout(&handle);
        }
    }
}

/// Whether timers of this page run in the worker: started on first use, `false` when
/// it could not start or failed.
pub(crate) fn worker_running() -> bool {
    Workers::with(|workers| workers.is_some())
}

/// The page's timer worker, if it runs.
struct Workers {
    worker: web_sys::Worker,
    /// The timers armed in it, to call when it posts their id.
    timers: Rc<RefCell<SmallMap<u32, Weak<Inner>>>>,
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

/// Whether the worker was tried, and how that went.
enum Slot {
    Untried,
    Running(Rc<Workers>),
    Failed,
}

thread_local!(static WORKERS: RefCell<Slot> = const { RefCell::new(Slot::Untried) });

impl Workers {
    /// Runs `f` with the worker, starting it on first use.
    fn with<T>(f: impl FnOnce(Option<&Rc<Workers>>) -> T) -> T {
        let workers = WORKERS.with(|slot| {
            let mut slot = slot.borrow_mut();
            if matches!(*slot, Slot::Untried) {
                *slot = match Self::start() {
                    Some(workers) => Slot::Running(workers),
                    None => Slot::Failed,
                };
            }
            match &*slot {
                Slot::Running(workers) => Some(workers.clone()),
                _ => None,
            }
        });
        f(workers.as_ref())
    }

    fn start() -> Option<Rc<Self>> {
        let parts = js_sys::Array::of1(&JsValue::from_str(WORKER_SOURCE));
        let properties = web_sys::BlobPropertyBag::new();
        properties.set_type("text/javascript");
        let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &properties).ok()?;
        let url = web_sys::Url::create_object_url_with_blob(&blob).ok()?;
        let worker = web_sys::Worker::new(&url).ok()?;
        let timers: Rc<RefCell<SmallMap<u32, Weak<Inner>>>> = Rc::default();
        let on_message = {
            let timers = timers.clone();
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
                let Some(id) = event.data().as_f64() else {
                    return;
                };
                // Released before calling back: the callback may arm timers.
                let timer = timers.borrow().get(&(id as u32)).and_then(Weak::upgrade);
                if let Some(timer) = timer {
                    timer.fire();
                }
            })
        };
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(|_event: web_sys::Event| {
            Workers::failed();
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Some(Rc::new(Self {
            worker,
            timers,
            _on_message: on_message,
            _on_error: on_error,
        }))
    }

    /// Arms timer `inner` in the worker; `false` when there is no worker.
    fn set(inner: &Rc<Inner>, ms: i32) -> bool {
        Self::with(|workers| {
            let Some(workers) = workers else {
                return false;
            };
            workers
                .timers
                .borrow_mut()
                .insert(inner.id, Rc::downgrade(inner));
            let message = js_sys::Array::of2(&inner.id.into(), &ms.into());
            if workers.worker.post_message(&message).is_err() {
                workers.timers.borrow_mut().remove(&inner.id);
                Self::failed();
                return false;
            }
            true
        })
    }

    fn clear(id: u32) {
        let workers = WORKERS.with(|slot| match &*slot.borrow() {
            Slot::Running(workers) => Some(workers.clone()),
            _ => None,
        });
        if let Some(workers) = workers {
            let message = js_sys::Array::of2(&id.into(), &(-1).into());
            let _ = workers.worker.post_message(&message);
        }
    }

    fn forget(id: u32) {
        WORKERS.with(|slot| {
            if let Slot::Running(workers) = &*slot.borrow() {
                workers.timers.borrow_mut().remove(&id);
            }
        });
    }

    /// The worker broke: from now on timers run on the main thread, and those armed in
    /// the worker are re-armed there (their `fire` re-schedules).
    fn failed() {
        let previous =
            WORKERS.with(|slot| std::mem::replace(&mut *slot.borrow_mut(), Slot::Failed));
        if let Slot::Running(workers) = previous {
            workers.worker.terminate();
            let armed: Vec<Rc<Inner>> = workers
                .timers
                .borrow_mut()
                .drain()
                .filter_map(|(_, timer)| timer.upgrade())
                .collect();
            for timer in armed {
                timer.fire();
            }
        }
    }
}

/// A future that completes after `duration`, timed like the client's other timers.
pub(crate) fn sleep(duration: Duration, mode: TimerMode) -> Sleep {
    let state: Rc<RefCell<SleepState>> = Rc::default();
    let timer = {
        let state = state.clone();
        Timer::new(mode, move || {
            let mut state = state.borrow_mut();
            state.done = true;
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        })
    };
    timer.set_deadline(Instant::now() + duration);
    Sleep {
        state,
        _timer: timer,
    }
}

/// See [`sleep`].
#[derive(Debug)]
pub(crate) struct Sleep {
    state: Rc<RefCell<SleepState>>,
    _timer: Timer,
}

#[derive(Debug, Default)]
struct SleepState {
    done: bool,
    waker: Option<Waker>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state.borrow_mut();
        if state.done {
            return Poll::Ready(());
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
