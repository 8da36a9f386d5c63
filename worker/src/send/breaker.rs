//! The per-number breaker: a number whose sends keep timing out (or breaking without an
//! answer) gets fewer send slots, so it cannot hold this process's permits while the other
//! numbers wait. After [`super::Tuning::breaker_trip_after`] such sends in a row (no answered
//! one in between), the number is *open*: at most `breaker_open_in_flight` of its sends are in
//! flight in this process at once, and the rest of its messages wait in the queue (a wait, not
//! an attempt). Every answered send (accepted or an error with a Graph answer) closes it again.
//! Per process, in memory: each worker protects its own permits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::metrics as m;

#[derive(Debug, Default)]
struct State {
    /// Sends in a row that ended without an answer.
    unanswered: u32,
    /// Sends of the number in flight in this process.
    in_flight: usize,
}

/// The breakers of this process's numbers.
#[derive(Debug)]
pub(crate) struct Breaker {
    trip_after: u32,
    open_in_flight: usize,
    numbers: Mutex<HashMap<String, State>>,
}

/// A send in flight, counted until it is dropped or [`InFlight::finish`]ed.
pub(crate) struct InFlight {
    breaker: Arc<Breaker>,
    number: String,
    done: bool,
}

impl Breaker {
    pub(crate) fn new(trip_after: u32, open_in_flight: usize) -> Self {
        Self {
            trip_after: trip_after.max(1),
            open_in_flight: open_in_flight.max(1),
            numbers: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.numbers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many of `wanted` sends of `number` may start now.
    pub(crate) fn room(&self, number: &str, wanted: usize) -> usize {
        let numbers = self.lock();
        match numbers.get(number) {
            Some(s) if s.unanswered >= self.trip_after => {
                wanted.min(self.open_in_flight.saturating_sub(s.in_flight))
            }
            _ => wanted,
        }
    }

    /// Whether `number` is open (its sends keep going unanswered).
    #[cfg(test)]
    pub(crate) fn is_open(&self, number: &str) -> bool {
        self.lock()
            .get(number)
            .is_some_and(|s| s.unanswered >= self.trip_after)
    }

    /// Counts a send of `number` in flight until the guard is finished or dropped.
    pub(crate) fn start(self: &Arc<Self>, number: &str) -> InFlight {
        self.lock().entry(number.to_owned()).or_default().in_flight += 1;
        InFlight {
            breaker: self.clone(),
            number: number.to_owned(),
            done: false,
        }
    }

    fn end(&self, number: &str, answered: Option<bool>) {
        let mut numbers = self.lock();
        let Some(s) = numbers.get_mut(number) else {
            return;
        };
        s.in_flight = s.in_flight.saturating_sub(1);
        match answered {
            Some(true) => {
                if s.unanswered >= self.trip_after {
                    tracing::info!(
                        phone_number_id = %number,
                        "a number's sends are answered again: its breaker closed"
                    );
                }
                s.unanswered = 0;
            }
            Some(false) => {
                s.unanswered = s.unanswered.saturating_add(1);
                if s.unanswered == self.trip_after {
                    metrics::counter!(m::BREAKER_TRIPS_TOTAL).increment(1);
                    tracing::warn!(
                        phone_number_id = %number,
                        unanswered = s.unanswered,
                        max_in_flight = self.open_in_flight,
                        "a number's sends keep timing out: fewer of them in flight until one is answered"
                    );
                }
            }
            None => {}
        }
        if s.in_flight == 0 && s.unanswered == 0 {
            numbers.remove(number);
        }
    }
}

impl InFlight {
    /// The send ended: `answered` = the Graph API answered it (accepted or an error with an
    /// answer); false = timed out or broke without an answer.
    pub(crate) fn finish(mut self, answered: bool) {
        self.done = true;
        self.breaker.end(&self.number, Some(answered));
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.end(&self.number, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unanswered_sends_in_a_row_trip_it_and_an_answer_closes_it() {
        let b = Arc::new(Breaker::new(3, 2));
        assert_eq!(b.room("n", 10), 10);
        for _ in 0..2 {
            b.start("n").finish(false);
        }
        assert!(!b.is_open("n"), "two in a row: still closed");
        b.start("n").finish(true);
        for _ in 0..3 {
            b.start("n").finish(false);
        }
        assert!(b.is_open("n"));
        assert_eq!(b.room("n", 10), 2, "open: two in flight at most");
        let one = b.start("n");
        assert_eq!(b.room("n", 10), 1);
        let two = b.start("n");
        assert_eq!(b.room("n", 10), 0);
        assert_eq!(b.room("other", 10), 10, "other numbers are not affected");
        drop(two);
        assert_eq!(b.room("n", 10), 1, "a dropped send frees its place");
        one.finish(true);
        assert!(!b.is_open("n"));
        assert_eq!(b.room("n", 10), 10);
    }
}
