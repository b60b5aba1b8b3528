//! A simulated telephone line between two terminals, 20 ms at a time.
//!
//! The line model is what makes loopback failures real: it attenuates,
//! adds white Gaussian noise at a level in dBm0 (SpanDSP's `awgn`, the
//! generator its own fax tests use), or goes dead after a given time. Both
//! directions are impaired independently, as on a real four-wire circuit.

use std::ptr::NonNull;
use std::time::Duration;

use spandsp_sys as sys;

use super::session::{CHUNK_SAMPLES, FaxSession, SAMPLE_RATE};

/// Anything that can sit at one end of the wire.
pub trait Terminal {
    /// The next `out.len()` samples this end sends.
    fn transmit(&mut self, out: &mut [i16]);
    /// Samples heard from the line.
    fn receive(&mut self, audio: &[i16]);
    /// This end has put the phone down.
    fn is_finished(&self) -> bool;
    /// Abandon the call now.
    fn hang_up(&mut self);
}

impl Terminal for FaxSession {
    fn transmit(&mut self, out: &mut [i16]) {
        FaxSession::transmit(self, out)
    }
    fn receive(&mut self, audio: &[i16]) {
        FaxSession::receive(self, audio)
    }
    fn is_finished(&self) -> bool {
        FaxSession::is_finished(self)
    }
    fn hang_up(&mut self) {
        FaxSession::hang_up(self)
    }
}

/// A person who picks up and says "hello?" now and then: a line that is
/// answered but never by a fax machine. The caller hears no CED or DIS and
/// gives up when T.30 timer T0 expires (code 2).
#[derive(Debug, Default)]
pub struct VoiceAnswer {
    samples: u64,
    hung_up: bool,
}

impl Terminal for VoiceAnswer {
    fn transmit(&mut self, out: &mut [i16]) {
        for s in out.iter_mut() {
            // Bursts of a 200 Hz voice-like tone with harmonics: 0.6 s of
            // "speech" every 2 s. Nothing a V.21 receiver takes for flags.
            let t = self.samples as f64 / SAMPLE_RATE as f64;
            *s = if t % 2.0 < 0.6 {
                let w = 2.0 * std::f64::consts::PI * 200.0 * t;
                (3000.0 * (w.sin() + 0.5 * (2.0 * w).sin() + 0.25 * (3.0 * w).sin())) as i16
            } else {
                0
            };
            self.samples += 1;
        }
    }
    fn receive(&mut self, _audio: &[i16]) {}
    fn is_finished(&self) -> bool {
        self.hung_up
    }
    fn hang_up(&mut self) {
        self.hung_up = true;
    }
}

/// How the line between the two ends behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineModel {
    /// Loss in each direction, in dB (0 for a clean line).
    pub attenuation_db: f32,
    /// White noise added in each direction, in dBm0; `None` for none.
    pub noise_dbm0: Option<f32>,
    /// The line goes silent (cut) after this much audio.
    pub cut_after: Option<Duration>,
    /// Seed for the noise, so a test sees the same line every run.
    pub seed: i32,
}

impl LineModel {
    pub fn clean() -> LineModel {
        LineModel {
            attenuation_db: 0.0,
            noise_dbm0: None,
            cut_after: None,
            seed: 1,
        }
    }
}

/// Owns a SpanDSP white Gaussian noise generator.
struct Noise(NonNull<sys::awgn_state_t>);

impl Noise {
    fn new(seed: i32, dbm0: f32) -> Noise {
        // SAFETY: awgn_init_dbm0 with a null state allocates a new one and
        // returns null only if allocation fails.
        let state = unsafe { sys::awgn_init_dbm0(std::ptr::null_mut(), seed, dbm0) };
        Noise(NonNull::new(state).expect("allocating a noise generator"))
    }

    fn sample(&mut self) -> i16 {
        // SAFETY: the state is live and exclusively ours.
        unsafe { sys::awgn(self.0.as_ptr()) }
    }
}

impl Drop for Noise {
    fn drop(&mut self) {
        // SAFETY: allocated by awgn_init_dbm0, freed exactly once here.
        unsafe { sys::awgn_free(self.0.as_ptr()) };
    }
}

// SAFETY: the generator is plain owned state with no thread affinity.
unsafe impl Send for Noise {}

/// One direction of the line.
struct Path {
    gain: f32,
    noise: Option<Noise>,
}

impl Path {
    fn carry(&mut self, audio: &mut [i16], dead: bool) {
        for s in audio.iter_mut() {
            let signal = if dead { 0.0 } else { *s as f32 * self.gain };
            let noise = match (&mut self.noise, dead) {
                (Some(n), false) => n.sample() as f32,
                _ => 0.0,
            };
            *s = (signal + noise).clamp(i16::MIN as f32, i16::MAX as f32) as i16;
        }
    }
}

/// The line itself: moves audio both ways and keeps the clock.
pub struct Wire {
    model: LineModel,
    forward: Path,
    backward: Path,
    a_out: Vec<i16>,
    b_out: Vec<i16>,
    samples: u64,
}

impl Wire {
    pub fn new(model: LineModel) -> Wire {
        let gain = 10f32.powf(-model.attenuation_db / 20.0);
        let path = |seed| Path {
            gain,
            noise: model.noise_dbm0.map(|db| Noise::new(seed, db)),
        };
        Wire {
            forward: path(model.seed),
            backward: path(model.seed.wrapping_add(7919)),
            model,
            a_out: vec![0; CHUNK_SAMPLES],
            b_out: vec![0; CHUNK_SAMPLES],
            samples: 0,
        }
    }

    /// Exchanges one 20 ms chunk: each end transmits, the line carries, each
    /// end hears the other.
    pub fn step(&mut self, a: &mut dyn Terminal, b: &mut dyn Terminal) {
        a.transmit(&mut self.a_out);
        b.transmit(&mut self.b_out);
        let dead = self.is_cut();
        self.forward.carry(&mut self.a_out, dead);
        self.backward.carry(&mut self.b_out, dead);
        b.receive(&self.a_out);
        a.receive(&self.b_out);
        self.samples += CHUNK_SAMPLES as u64;
    }

    /// The line has been cut (the far end is gone).
    pub fn is_cut(&self) -> bool {
        self.model
            .cut_after
            .is_some_and(|after| self.elapsed() >= after)
    }

    /// Audio time carried so far.
    pub fn elapsed(&self) -> Duration {
        Duration::from_micros(self.samples * 1_000_000 / SAMPLE_RATE as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends a fixed tone one way and records what arrives.
    struct Probe {
        level: i16,
        heard: Vec<i16>,
    }

    impl Terminal for Probe {
        fn transmit(&mut self, out: &mut [i16]) {
            out.fill(self.level);
        }
        fn receive(&mut self, audio: &[i16]) {
            self.heard.extend_from_slice(audio);
        }
        fn is_finished(&self) -> bool {
            false
        }
        fn hang_up(&mut self) {}
    }

    fn rms(samples: &[i16]) -> f64 {
        (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
    }

    #[test]
    fn attenuation_scales_and_a_cut_line_goes_silent() {
        let mut a = Probe {
            level: 10_000,
            heard: vec![],
        };
        let mut b = Probe {
            level: 0,
            heard: vec![],
        };
        let mut wire = Wire::new(LineModel {
            attenuation_db: 20.0,
            cut_after: Some(Duration::from_millis(100)),
            ..LineModel::clean()
        });
        for _ in 0..10 {
            wire.step(&mut a, &mut b);
        }
        assert_eq!(wire.elapsed(), Duration::from_millis(200));
        // 20 dB is a factor of 10 in amplitude.
        assert!(
            b.heard[..800].iter().all(|&s| s == 1000),
            "{:?}",
            &b.heard[..4]
        );
        assert!(b.heard[800..].iter().all(|&s| s == 0));
        assert!(wire.is_cut());
    }

    #[test]
    fn noise_level_follows_dbm0_and_is_reproducible() {
        let hear = |db: f32, seed: i32| {
            let mut a = Probe {
                level: 0,
                heard: vec![],
            };
            let mut b = Probe {
                level: 0,
                heard: vec![],
            };
            let mut wire = Wire::new(LineModel {
                noise_dbm0: Some(db),
                seed,
                ..LineModel::clean()
            });
            for _ in 0..100 {
                wire.step(&mut a, &mut b);
            }
            b.heard
        };
        let quiet = rms(&hear(-60.0, 1));
        let loud = rms(&hear(-40.0, 1));
        // 20 dB apart: ten times the RMS, within the noise of noise.
        assert!((loud / quiet - 10.0).abs() < 1.0, "{quiet} {loud}");
        assert_eq!(hear(-50.0, 7), hear(-50.0, 7));
        assert_ne!(hear(-50.0, 7), hear(-50.0, 8));
    }

    #[test]
    fn a_voice_is_never_a_fax() {
        let mut voice = VoiceAnswer::default();
        let mut out = vec![0i16; 16_000];
        voice.transmit(&mut out);
        assert!(rms(&out[..4800]) > 1000.0, "speaks for 0.6 s");
        assert_eq!(rms(&out[4800..16_000]), 0.0, "then listens");
        assert!(!voice.is_finished());
        voice.hang_up();
        assert!(voice.is_finished());
    }
}
