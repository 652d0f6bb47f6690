//! Input: interactive code entry. Refreshes the nameplate list, takes the chosen nameplate (which
//! the Code hands to the Nameplate, so it is claimed at once), then the words.
//!
//! Mirrors `src/wormhole/_input.py` (tab completion itself lives in [`crate::code::completions`],
//! fed by [`super::Event::Nameplates`]).
//!
//! States ([`State`]): `Idle` → `TypingNameplate` → `TypingWords` → `Done`.
//!
//! Inputs ([`In`]): `Start` (Code); `Refresh`, `ChooseNameplate`, `ChooseWords` (the application);
//! `GotNameplates` (Lister); `GotWordlist` (Nameplate, once claimed).
//!
//! Outputs: `refresh` → Lister; `got_nameplate`, `finished_input(code)` → Code; the nameplate list
//! and warnings (a choice out of order, an invalid nameplate) → Boss.

use super::{boss, code, lister, Ctx, Route};

/// Inputs of the input machine.
#[derive(Debug)]
pub(crate) enum In {
    Start,
    Refresh,
    ChooseNameplate(String),
    ChooseWords(String),
    GotNameplates(Vec<String>),
    GotWordlist,
}

/// Input states.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum State {
    Idle,
    TypingNameplate,
    TypingWords { nameplate: String },
    Done,
}

/// The input machine.
#[derive(Debug)]
pub(crate) struct InputMachine {
    state: State,
}

impl InputMachine {
    pub(crate) fn new() -> Self {
        Self { state: State::Idle }
    }

    pub(crate) fn handle(&mut self, input: In, ctx: &mut Ctx<'_>) {
        match (&self.state, input) {
            (State::Idle, In::Start) => {
                self.state = State::TypingNameplate;
                ctx.route(Route::Lister(lister::In::Refresh));
            }
            (_, In::Refresh) => ctx.route(Route::Lister(lister::In::Refresh)),
            (_, In::GotNameplates(nameplates)) => {
                ctx.route(Route::Boss(boss::In::Nameplates(nameplates)))
            }
            (State::TypingNameplate, In::ChooseNameplate(nameplate)) => {
                if nameplate.is_empty() || !nameplate.bytes().all(|b| b.is_ascii_digit()) {
                    warn(
                        format!("nameplate {nameplate:?} must be numeric, with no spaces"),
                        ctx,
                    );
                    return;
                }
                ctx.route(Route::Code(code::In::GotNameplate(nameplate.clone())));
                self.state = State::TypingWords { nameplate };
            }
            (State::TypingWords { nameplate }, In::ChooseWords(words)) => {
                if words.is_empty() || words.chars().any(char::is_whitespace) {
                    warn(
                        "the code words must be non-empty, with no spaces".into(),
                        ctx,
                    );
                    return;
                }
                let code = format!("{nameplate}-{words}");
                ctx.route(Route::Code(code::In::FinishedInput(code)));
                self.state = State::Done;
            }
            (_, In::GotWordlist) => {}
            (state, In::ChooseNameplate(_)) => {
                let why = match state {
                    State::Idle => "the code is not being typed",
                    _ => "the nameplate was already chosen",
                };
                warn(why.into(), ctx);
            }
            (state, In::ChooseWords(_)) => {
                let why = match state {
                    State::Idle => "the code is not being typed",
                    State::TypingNameplate => "choose the nameplate before the words",
                    _ => "the words were already chosen",
                };
                warn(why.into(), ctx);
            }
            (_, In::Start) => {}
        }
    }
}

fn warn(text: String, ctx: &mut Ctx<'_>) {
    ctx.route(Route::Boss(boss::In::Warning(text)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Harness;

    #[test]
    fn nameplate_then_words() {
        let mut h = Harness::new();
        let mut i = InputMachine::new();
        i.handle(In::Start, &mut h.ctx());
        assert_eq!(h.routes(), vec!["Lister(Refresh)"]);
        i.handle(In::GotNameplates(vec!["4".into()]), &mut h.ctx());
        assert_eq!(h.routes(), vec![r#"Boss(Nameplates(["4"]))"#]);
        i.handle(In::ChooseWords("a-b".into()), &mut h.ctx());
        assert!(h.routes()[0].starts_with("Boss(Warning"));
        i.handle(In::ChooseNameplate("4 ".into()), &mut h.ctx());
        assert!(h.routes()[0].starts_with("Boss(Warning"));
        i.handle(In::ChooseNameplate("4".into()), &mut h.ctx());
        assert_eq!(h.routes(), vec![r#"Code(GotNameplate("4"))"#]);
        i.handle(In::ChooseNameplate("5".into()), &mut h.ctx());
        assert!(h.routes()[0].starts_with("Boss(Warning"));
        i.handle(In::GotWordlist, &mut h.ctx());
        i.handle(In::Refresh, &mut h.ctx());
        assert_eq!(h.routes(), vec!["Lister(Refresh)"]);
        i.handle(In::ChooseWords("purple-sausages".into()), &mut h.ctx());
        assert_eq!(
            h.routes(),
            vec![r#"Code(FinishedInput("4-purple-sausages"))"#]
        );
        i.handle(In::ChooseWords("x".into()), &mut h.ctx());
        assert!(h.routes()[0].starts_with("Boss(Warning"));
    }
}
