//! Store writes made in the order they were asked for. actix runs an actor's
//! `ctx.wait` futures last pushed first, so two writes asked for in one handler (a
//! customer's message, then the bot's answer to it) would land reversed. An actor
//! keeps a [`Waits`] and passes such writes to [`wait_in_order`]: they run one after
//! another, first asked first, and while any is pending the actor takes no message
//! (one `ctx.wait` carries them all).

use actix::{Actor, ActorFuture, AsyncContext, Context};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::Poll;

type Job<A> = Pin<Box<dyn ActorFuture<A, Output = ()>>>;

/// The writes an actor has waiting (see the module).
pub struct Waits<A: Actor> {
    queue: VecDeque<Job<A>>,
    pumping: bool,
}

impl<A: Actor> Default for Waits<A> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            pumping: false,
        }
    }
}

/// An actor whose writes are kept in order.
pub trait InOrder: Actor<Context = Context<Self>> {
    fn waits(&mut self) -> &mut Waits<Self>;
}

/// Runs `f` after every write asked for before it; the actor waits meanwhile.
pub fn wait_in_order<A: InOrder>(
    act: &mut A,
    ctx: &mut Context<A>,
    f: impl ActorFuture<A, Output = ()> + 'static,
) {
    let w = act.waits();
    w.queue.push_back(Box::pin(f));
    if !w.pumping {
        w.pumping = true;
        ctx.wait(Pump { current: None });
    }
}

/// The one `ctx.wait` future that runs the queue.
struct Pump<A: Actor> {
    current: Option<Job<A>>,
}

impl<A: InOrder> ActorFuture<A> for Pump<A> {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut A,
        ctx: &mut Context<A>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if this.current.is_none() {
                match act.waits().queue.pop_front() {
                    Some(job) => this.current = Some(job),
                    None => {
                        act.waits().pumping = false;
                        return Poll::Ready(());
                    }
                }
            }
            if let Some(job) = this.current.as_mut() {
                match job.as_mut().poll(act, ctx, task) {
                    Poll::Ready(()) => this.current = None,
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::{ActorFutureExt, Handler, Message, WrapFuture};

    #[derive(Default)]
    struct Writer {
        waits: Waits<Self>,
        log: Vec<&'static str>,
    }

    impl Actor for Writer {
        type Context = Context<Self>;
    }

    impl InOrder for Writer {
        fn waits(&mut self) -> &mut Waits<Self> {
            &mut self.waits
        }
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Write(Vec<(&'static str, u64)>);

    #[derive(Message)]
    #[rtype(result = "Vec<&'static str>")]
    struct Log;

    impl Handler<Write> for Writer {
        type Result = ();
        fn handle(&mut self, m: Write, ctx: &mut Context<Self>) {
            for (name, ms) in m.0 {
                // The first write is the slowest: order, not speed, decides.
                let f = tokio::time::sleep(std::time::Duration::from_millis(ms))
                    .into_actor(self)
                    .map(move |_, act: &mut Writer, ctx| {
                        act.log.push(name);
                        if name == "a" {
                            // A follow-up asked for while writing: after those before it.
                            wait_in_order(
                                act,
                                ctx,
                                async {}
                                    .into_actor(act)
                                    .map(|_, act: &mut Writer, _| act.log.push("a2")),
                            );
                        }
                    });
                wait_in_order(self, ctx, f);
            }
        }
    }

    impl Handler<Log> for Writer {
        type Result = Vec<&'static str>;
        fn handle(&mut self, _: Log, _: &mut Context<Self>) -> Vec<&'static str> {
            self.log.clone()
        }
    }

    #[actix_rt::test]
    async fn writes_asked_for_in_one_handler_are_made_first_asked_first() {
        let w = Writer::default().start();
        w.send(Write(vec![("a", 30), ("b", 1), ("c", 0)]))
            .await
            .unwrap();
        w.send(Write(vec![("d", 0)])).await.unwrap();
        // The actor took no message while writing: Log sees them all.
        assert_eq!(w.send(Log).await.unwrap(), ["a", "b", "c", "a2", "d"]);
    }
}
