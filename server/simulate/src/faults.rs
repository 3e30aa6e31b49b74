//! Network faults a phone meets in a village, drawn per attempt from the phone's own
//! generator: an answer lost after the server committed (the phone must resend, the server
//! must answer the replay with the first result), and a request given up on by the phone
//! before the answer came (the server may or may not have done the work).

use std::time::Duration;

use taizhang_core::random::SplitMix;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// The server answers, the phone never hears it.
    DropResponse,
    /// The phone stops waiting after this long.
    Timeout(Duration),
}

pub struct Faults {
    rng: SplitMix,
    /// Probability that an attempt meets a fault.
    rate: f64,
}

impl Faults {
    pub fn new(seed: u64, rate: f64) -> Self {
        Faults {
            rng: SplitMix::new(seed),
            rate: rate.clamp(0.0, 0.9),
        }
    }

    pub fn draw(&mut self) -> Fault {
        let draw = self.rng.next_f64();
        if draw >= self.rate {
            return Fault::None;
        }
        // Two thirds of the faults lose the answer, the rest time out early or late in the
        // request (before or after the server committed).
        if draw < self.rate * 2.0 / 3.0 {
            Fault::DropResponse
        } else {
            Fault::Timeout(Duration::from_millis(1 + self.rng.next_u64() % 40))
        }
    }

    /// Up to half the backoff again, so phones that failed together do not retry together.
    pub fn jitter(&mut self, backoff: Duration) -> Duration {
        backoff.mul_f64(self.rng.next_f64() * 0.5)
    }
}
