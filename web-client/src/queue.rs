//! Single-threaded channels between the driver and the handles: a bounded queue (one
//! [`Sender`], the driver; one [`Receiver`], a [`Stream`]) for subscription messages and
//! event streams, and [`oneshot`] for the answer to a command.
//!
//! The browser runs the client on one thread, so these are an `Rc<RefCell<..>>` and a
//! waker rather than atomic channels: smaller code in the wasm module, and an exact
//! capacity (a full queue is how a slow reader's drops are counted).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures::Stream;

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    /// The reader waiting for an item.
    waker: Option<Waker>,
    /// No more items will come: the stream ends once `items` is empty.
    closed: bool,
    /// The receiver was dropped: items would never be read.
    abandoned: bool,
}

/// The driver's end. Dropping it closes the queue.
#[derive(Debug)]
pub(crate) struct Sender<T>(Rc<RefCell<State<T>>>);

/// The reader's end.
#[derive(Debug)]
pub(crate) struct Receiver<T>(Rc<RefCell<State<T>>>);

/// A queue holding at most `capacity` items (at least one).
pub(crate) fn queue<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let state = Rc::new(RefCell::new(State {
        items: VecDeque::new(),
        capacity: capacity.max(1),
        waker: None,
        closed: false,
        abandoned: false,
    }));
    (Sender(state.clone()), Receiver(state))
}

impl<T> Sender<T> {
    /// Adds `item` unless the queue is full (`Err` gives it back) or abandoned (the
    /// item is dropped: nobody reads it, and that is not a loss to report).
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let mut state = self.0.borrow_mut();
        if state.abandoned {
            return Ok(());
        }
        if state.items.len() >= state.capacity {
            return Err(item);
        }
        state.items.push_back(item);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
        Ok(())
    }

    /// Adds `item`, dropping the oldest when full; `true` when one was dropped.
    pub(crate) fn push_evicting(&self, item: T) -> bool {
        let evicted = {
            let mut state = self.0.borrow_mut();
            let full = state.items.len() >= state.capacity;
            if full {
                state.items.pop_front();
            }
            full
        };
        let _ = self.push(item);
        evicted
    }

    /// Whether the receiver is gone.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.0.borrow().abandoned
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.0.borrow_mut();
        state.closed = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once the sender is gone and the queue is empty.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll(cx)).await
    }

    /// The next item if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        self.0.borrow_mut().items.pop_front()
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.0.borrow_mut();
        if let Some(item) = state.items.pop_front() {
            return Poll::Ready(Some(item));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T> Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.poll(cx)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.0.borrow_mut();
        state.abandoned = true;
        state.items.clear();
    }
}

/// A single-threaded one-shot channel: the answer to one command.
pub(crate) mod oneshot {
    use std::cell::RefCell;
    use std::future::Future;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};

    #[derive(Debug)]
    struct State<T> {
        value: Option<T>,
        waker: Option<Waker>,
        /// The sender is gone (with or without sending).
        done: bool,
    }

    /// Answers once. Dropping it unanswered cancels the receiver.
    #[derive(Debug)]
    pub(crate) struct Sender<T>(Rc<RefCell<State<T>>>);

    /// Awaits the answer: `Err(Canceled)` if the sender was dropped without one.
    #[derive(Debug)]
    pub(crate) struct Receiver<T>(Rc<RefCell<State<T>>>);

    /// The sender went away without answering.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Canceled;

    pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
        let state = Rc::new(RefCell::new(State {
            value: None,
            waker: None,
            done: false,
        }));
        (Sender(state.clone()), Receiver(state))
    }

    impl<T> Sender<T> {
        /// Hands `value` to the receiver (`Err` gives it back if the receiver is gone).
        pub(crate) fn send(self, value: T) -> Result<(), T> {
            if Rc::strong_count(&self.0) < 2 {
                return Err(value);
            }
            self.0.borrow_mut().value = Some(value);
            Ok(())
        }
    }

    impl<T> Drop for Sender<T> {
        fn drop(&mut self) {
            let mut state = self.0.borrow_mut();
            state.done = true;
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        }
    }

    impl<T> Future for Receiver<T> {
        type Output = Result<T, Canceled>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let mut state = self.0.borrow_mut();
            if let Some(value) = state.value.take() {
                return Poll::Ready(Ok(value));
            }
            if state.done {
                return Poll::Ready(Err(Canceled));
            }
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain<T>(receiver: &Receiver<T>) -> (Vec<T>, bool) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut items = Vec::new();
        loop {
            match receiver.poll(&mut cx) {
                Poll::Ready(Some(item)) => items.push(item),
                Poll::Ready(None) => return (items, true),
                Poll::Pending => return (items, false),
            }
        }
    }

    #[test]
    fn a_full_queue_refuses_and_evicting_keeps_the_newest() {
        let (sender, receiver) = queue(2);
        assert!(sender.push(1).is_ok());
        assert!(sender.push(2).is_ok());
        assert_eq!(sender.push(3), Err(3));
        assert!(sender.push_evicting(4));
        assert_eq!(drain(&receiver), (vec![2, 4], false));
        drop(sender);
        assert_eq!(
            drain(&receiver),
            (vec![], true),
            "ends once the sender is gone"
        );
    }

    #[test]
    fn a_oneshot_answers_once_or_cancels() {
        use std::future::Future;
        let mut cx = Context::from_waker(Waker::noop());
        let (sender, mut receiver) = oneshot::channel();
        assert!(Pin::new(&mut receiver).poll(&mut cx).is_pending());
        assert_eq!(sender.send(7), Ok(()));
        assert_eq!(Pin::new(&mut receiver).poll(&mut cx), Poll::Ready(Ok(7)));
        let (sender, mut receiver) = oneshot::channel::<u8>();
        drop(sender);
        assert_eq!(
            Pin::new(&mut receiver).poll(&mut cx),
            Poll::Ready(Err(oneshot::Canceled))
        );
        let (sender, receiver) = oneshot::channel();
        drop(receiver);
        assert_eq!(sender.send(1), Err(1), "nobody listens");
    }

    #[test]
    fn a_dropped_receiver_abandons_the_queue() {
        let (sender, receiver) = queue(1);
        drop(receiver);
        assert!(sender.is_abandoned());
        assert!(sender.push(1).is_ok(), "pushes to nobody are not drops");
        assert!(sender.push(2).is_ok());
    }
}
