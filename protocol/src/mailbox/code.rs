//! Code: drives the three ways of getting a code (set, allocate, interactive input) and hands the
//! nameplate to the Nameplate and the code to the Boss and the Key.
//!
//! Mirrors `src/wormhole/_code.py`.
//!
//! States ([`State`]): `Idle` → `Known` (set), or `Allocating` → `Known`, or
//! `InputtingNameplate` → `InputtingWords` → `Known`.
//!
//! Inputs ([`In`]): `Set`, `Allocate`, `StartInput` (Wormhole, once); `Allocated` (Allocator);
//! `GotNameplate`, `FinishedInput` (Input).
//!
//! Outputs: `set_nameplate` → Nameplate; `got_code` → Boss and Key; `allocate` → Allocator;
//! `start` → Input.

use super::{allocator, boss, input, key, nameplate, Ctx, Route};

/// Inputs of the code machine.
#[derive(Debug)]
pub(crate) enum In {
    Set(String),
    Allocate { words: usize },
    StartInput,
    Allocated { nameplate: String, code: String },
    GotNameplate(String),
    FinishedInput(String),
}

/// Code states.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum State {
    Idle,
    Allocating,
    InputtingNameplate,
    InputtingWords,
    Known,
}

/// The code machine.
#[derive(Debug)]
pub(crate) struct Code {
    state: State,
}

impl Code {
    pub(crate) fn new() -> Self {
        Self { state: State::Idle }
    }

    pub(crate) fn handle(&mut self, input: In, ctx: &mut Ctx<'_>) {
        self.state = match (&self.state, input) {
            (State::Idle, In::Set(code)) => {
                // Validated by the Wormhole before it gets here.
                let nameplate = code.split('-').next().unwrap_or_default().to_owned();
                ctx.route(Route::Nameplate(nameplate::In::SetNameplate(nameplate)));
                got_code(code, ctx);
                State::Known
            }
            (State::Idle, In::Allocate { words }) => {
                ctx.route(Route::Allocator(allocator::In::Allocate { words }));
                State::Allocating
            }
            (State::Idle, In::StartInput) => {
                ctx.route(Route::Input(input::In::Start));
                State::InputtingNameplate
            }
            (State::Allocating, In::Allocated { nameplate, code }) => {
                ctx.route(Route::Nameplate(nameplate::In::SetNameplate(nameplate)));
                got_code(code, ctx);
                State::Known
            }
            (State::InputtingNameplate, In::GotNameplate(nameplate)) => {
                ctx.route(Route::Nameplate(nameplate::In::SetNameplate(nameplate)));
                State::InputtingWords
            }
            (State::InputtingWords, In::FinishedInput(code)) => {
                got_code(code, ctx);
                State::Known
            }
            // Out-of-order inputs cannot come from our own machines: ignore.
            _ => return,
        };
    }
}

fn got_code(code: String, ctx: &mut Ctx<'_>) {
    ctx.route(Route::Boss(boss::In::GotCode(code.clone())));
    ctx.route(Route::Key(key::In::GotCode(code)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Harness;

    #[test]
    fn set() {
        let mut h = Harness::new();
        let mut c = Code::new();
        c.handle(In::Set("7-guitarist-revenge".into()), &mut h.ctx());
        assert_eq!(
            h.routes(),
            vec![
                r#"Nameplate(SetNameplate("7"))"#,
                r#"Boss(GotCode("7-guitarist-revenge"))"#,
                r#"Key(GotCode("7-guitarist-revenge"))"#,
            ]
        );
        c.handle(In::Set("8-a-b".into()), &mut h.ctx());
        assert!(h.routes().is_empty());
    }

    #[test]
    fn allocate() {
        let mut h = Harness::new();
        let mut c = Code::new();
        c.handle(In::Allocate { words: 3 }, &mut h.ctx());
        assert_eq!(h.routes(), vec!["Allocator(Allocate { words: 3 })"]);
        c.handle(
            In::Allocated {
                nameplate: "5".into(),
                code: "5-a-b-c".into(),
            },
            &mut h.ctx(),
        );
        assert_eq!(
            h.routes(),
            vec![
                r#"Nameplate(SetNameplate("5"))"#,
                r#"Boss(GotCode("5-a-b-c"))"#,
                r#"Key(GotCode("5-a-b-c"))"#,
            ]
        );
    }

    #[test]
    fn interactive() {
        let mut h = Harness::new();
        let mut c = Code::new();
        c.handle(In::StartInput, &mut h.ctx());
        assert_eq!(h.routes(), vec!["Input(Start)"]);
        c.handle(In::FinishedInput("5-a-b".into()), &mut h.ctx());
        assert!(h.routes().is_empty(), "words before nameplate ignored");
        c.handle(In::GotNameplate("5".into()), &mut h.ctx());
        assert_eq!(h.routes(), vec![r#"Nameplate(SetNameplate("5"))"#]);
        c.handle(In::FinishedInput("5-a-b".into()), &mut h.ctx());
        assert_eq!(
            h.routes(),
            vec![r#"Boss(GotCode("5-a-b"))"#, r#"Key(GotCode("5-a-b"))"#]
        );
    }
}
