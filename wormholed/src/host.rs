//! One generic actor that hosts any pure protocol machine.
//!
//! The actor makes no protocol decision: it feeds each [`Feed`] message into the machine with the
//! current time, drains every output into its router, and keeps one timer armed from the machine's
//! `poll_timeout`. The router is a closure built by the composition root (`wire.rs`) that forwards
//! each output to the right `Recipient`.

use std::time::Instant;

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message, SpawnHandle};

use crate::clock;

/// The shape every hosted machine has (DESIGN.md: `handle`, `poll_output`, `poll_timeout`).
pub(crate) trait Machine: Unpin + 'static {
    /// Events into the machine.
    type Input: Send + 'static;
    /// What the machine wants done.
    type Output: 'static;

    /// Feeds one event in.
    fn handle(&mut self, now: Instant, input: Self::Input);
    /// The next output, if any.
    fn poll_output(&mut self) -> Option<Self::Output>;
    /// When the machine next wants [`Machine::timeout_input`].
    fn poll_timeout(&self) -> Option<Instant>;
    /// The input that tells the machine its timer fired.
    fn timeout_input() -> Self::Input;
    /// Whether the machine has finished for good (the host then stops).
    fn is_finished(&self) -> bool;
}

/// An event for the hosted machine.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Feed<I: Send + 'static>(pub(crate) I);

/// Where a host sends its machine's outputs.
pub(crate) type Router<O> = Box<dyn FnMut(O)>;

/// The actor hosting one machine.
pub(crate) struct MachineHost<M: Machine> {
    machine: M,
    route: Router<M::Output>,
    timer: Option<(Instant, SpawnHandle)>,
}

impl<M: Machine> MachineHost<M> {
    /// Hosts `machine`, sending its outputs to `route`.
    pub(crate) fn new(machine: M, route: Router<M::Output>) -> Self {
        Self {
            machine,
            route,
            timer: None,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        while let Some(output) = self.machine.poll_output() {
            (self.route)(output);
        }
        let wanted = self.machine.poll_timeout();
        if self.timer.as_ref().map(|(at, _)| *at) != wanted {
            if let Some((_, handle)) = self.timer.take() {
                ctx.cancel_future(handle);
            }
            if let Some(at) = wanted {
                let delay = at.saturating_duration_since(clock::now());
                let handle = ctx.run_later(delay, |host, ctx| {
                    host.timer = None;
                    host.feed(M::timeout_input(), ctx);
                });
                self.timer = Some((at, handle));
            }
        }
        if self.machine.is_finished() {
            ctx.stop();
        }
    }

    fn feed(&mut self, input: M::Input, ctx: &mut Context<Self>) {
        self.machine.handle(clock::now(), input);
        self.flush(ctx);
    }
}

impl<M: Machine> Actor for MachineHost<M> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.flush(ctx);
    }
}

impl<M: Machine> Handler<Feed<M::Input>> for MachineHost<M> {
    type Result = ();

    fn handle(&mut self, Feed(input): Feed<M::Input>, ctx: &mut Context<Self>) {
        self.feed(input, ctx);
    }
}

/// Stop the host now, whatever its machine's state (a wormhole torn down after a grace period).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Halt;

impl<M: Machine> Handler<Halt> for MachineHost<M> {
    type Result = ();

    fn handle(&mut self, _: Halt, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
