//! Prompt playback, sans-IO: WAV files (hound) decoded once to 8 kHz mono — any sample
//! rate resampled with a windowed-sinc low-pass, stereo mixed down, 8/16/24/32-bit and
//! float accepted — then played from a queue, frame by frame, with barge-in (a digit
//! stops the prompts marked interruptible), silence and comfort noise items.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

/// Why a prompt cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{path}: {source}")]
    Wav { path: String, source: hound::Error },
    #[error("{path}: empty audio")]
    Empty { path: String },
}

/// Decoded audio ready to play: 8 kHz mono.
pub type Samples = Arc<[i16]>;

/// Loads a WAV file as 8 kHz mono.
pub fn load_wav(path: &Path) -> Result<Samples, PromptError> {
    let name = path.display().to_string();
    let r = hound::WavReader::open(path).map_err(|source| PromptError::Wav {
        path: name.clone(),
        source,
    })?;
    decode_wav(r, &name)
}

/// The built-in welcome prompt ("Welcome to omnigate. Press any key."), in the binary so
/// `cargo run` works from any directory.
pub fn builtin_welcome() -> Samples {
    let r = hound::WavReader::new(std::io::Cursor::new(
        &include_bytes!("../../prompts/welcome.wav")[..],
    ))
    .expect("built-in prompt is a WAV");
    decode_wav(r, "built-in welcome").expect("built-in prompt decodes")
}

fn decode_wav<R: std::io::Read>(
    mut r: hound::WavReader<R>,
    name: &str,
) -> Result<Samples, PromptError> {
    let wav_err = |source| PromptError::Wav {
        path: name.to_string(),
        source,
    };
    let spec = r.spec();
    let ch = spec.channels.max(1) as usize;
    let raw: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(wav_err)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(8, 32) - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(wav_err)?
        }
    };
    let mono: Vec<f32> = raw
        .chunks(ch)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect();
    if mono.is_empty() {
        return Err(PromptError::Empty {
            path: name.to_string(),
        });
    }
    let out = resample(&mono, spec.sample_rate, 8000);
    Ok(out
        .iter()
        .map(|&v| (v * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect::<Vec<_>>()
        .into())
}

/// Resamples with a windowed-sinc (Blackman) interpolator whose cut-off is 0.45 of the
/// lower of the two rates: no aliasing when going down (48 kHz → 8 kHz), no imaging
/// going up.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    let ratio = to as f64 / from as f64;
    let cutoff = 0.45 * ratio.min(1.0); // cycles per input sample, relative to from-rate Nyquist*2
    const HALF: i64 = 16;
    let width = (HALF as f64 / ratio.min(1.0)).ceil() as i64;
    let n_out = ((input.len() as f64) * ratio).floor() as usize;
    let mut out = Vec::with_capacity(n_out);
    for j in 0..n_out {
        let t = j as f64 / ratio; // position in input samples
        let centre = t.floor() as i64;
        let mut acc = 0.0f64;
        let mut norm = 0.0f64;
        for k in (centre - width + 1)..=(centre + width) {
            if k < 0 || k as usize >= input.len() {
                continue;
            }
            let x = t - k as f64;
            let sinc = if x.abs() < 1e-9 {
                2.0 * cutoff
            } else {
                (2.0 * std::f64::consts::PI * cutoff * x).sin() / (std::f64::consts::PI * x)
            };
            let w = x / width as f64;
            let blackman = if w.abs() >= 1.0 {
                0.0
            } else {
                0.42 + 0.5 * (std::f64::consts::PI * w).cos()
                    + 0.08 * (2.0 * std::f64::consts::PI * w).cos()
            };
            let c = sinc * blackman;
            acc += input[k as usize] as f64 * c;
            norm += c;
        }
        out.push(if norm.abs() > 1e-9 {
            (acc / norm) as f32
        } else {
            0.0
        });
    }
    out
}

/// One thing in the play queue.
#[derive(Debug, Clone)]
pub enum Item {
    Prompt {
        id: u64,
        samples: Samples,
        barge_in: bool,
    },
    Silence {
        id: u64,
        samples: u32,
    },
    /// Low-level noise (about -60 dBov) so callers do not think the line died.
    ComfortNoise {
        id: u64,
        samples: u32,
    },
}

impl Item {
    fn id(&self) -> u64 {
        match self {
            Item::Prompt { id, .. } | Item::Silence { id, .. } | Item::ComfortNoise { id, .. } => {
                *id
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Item::Prompt { samples, .. } => samples.len(),
            Item::Silence { samples, .. } | Item::ComfortNoise { samples, .. } => *samples as usize,
        }
    }
}

/// What playing a frame produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Played {
    /// Whether the frame carries audio from the queue (false: idle).
    pub active: bool,
    /// Items that finished during this frame.
    pub finished: Vec<u64>,
}

/// The play queue of one leg.
#[derive(Debug, Default)]
pub struct Player {
    queue: VecDeque<Item>,
    pos: usize,
    noise: u32,
}

impl Player {
    pub fn new() -> Player {
        Player {
            queue: VecDeque::new(),
            pos: 0,
            noise: 0x1234_5678,
        }
    }

    pub fn enqueue(&mut self, item: Item) {
        self.queue.push_back(item);
    }

    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// A digit arrived: drop the interruptible prompts at the head of the queue (and the
    /// rest of the queue they lead). Returns the ids stopped.
    pub fn barge_in(&mut self) -> Vec<u64> {
        match self.queue.front() {
            Some(Item::Prompt { barge_in: true, .. }) => self.stop(),
            _ => vec![],
        }
    }

    /// Stops everything queued.
    pub fn stop(&mut self) -> Vec<u64> {
        self.pos = 0;
        self.queue.drain(..).map(|i| i.id()).collect()
    }

    /// Fills `out` (silence when idle).
    pub fn fill(&mut self, out: &mut [i16]) -> Played {
        let mut played = Played::default();
        let mut filled = 0;
        while filled < out.len() {
            let Some(item) = self.queue.front() else {
                out[filled..].fill(0);
                break;
            };
            played.active = true;
            let take = (item.len() - self.pos).min(out.len() - filled);
            let dst = &mut out[filled..filled + take];
            match item {
                Item::Prompt { samples, .. } => {
                    dst.copy_from_slice(&samples[self.pos..self.pos + take])
                }
                Item::Silence { .. } => dst.fill(0),
                Item::ComfortNoise { .. } => {
                    for s in dst.iter_mut() {
                        // xorshift32, scaled to about ±30.
                        self.noise ^= self.noise << 13;
                        self.noise ^= self.noise >> 17;
                        self.noise ^= self.noise << 5;
                        *s = ((self.noise >> 16) as i16 as i32 * 30 / 32768) as i16;
                    }
                }
            }
            filled += take;
            self.pos += take;
            if self.pos >= item.len() {
                played.finished.push(item.id());
                self.queue.pop_front();
                self.pos = 0;
            }
        }
        played
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, secs: f32) -> Vec<f32> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
    }

    #[test]
    fn resampling_keeps_the_band_and_removes_aliases() {
        // 1 kHz survives 48k → 8k with its level; 5 kHz (above the new Nyquist) is removed
        // rather than folded to 3 kHz.
        let pass = resample(&tone(48000, 1000.0, 0.5), 48000, 8000);
        assert_eq!(pass.len(), 4000);
        let mid = &pass[400..3600];
        assert!((rms(mid) - 0.3536).abs() < 0.02, "rms {}", rms(mid));
        let stop = resample(&tone(48000, 5000.0, 0.5), 48000, 8000);
        assert!(
            rms(&stop[400..3600]) < 0.01,
            "alias rms {}",
            rms(&stop[400..3600])
        );
        // 16 kHz and 44.1 kHz and upsampling 8k → 8k identity, 4k → 8k keeps a 500 Hz tone.
        assert_eq!(resample(&tone(44100, 440.0, 1.0), 44100, 8000).len(), 8000);
        let up = resample(&tone(4000, 500.0, 0.5), 4000, 8000);
        assert!((rms(&up[200..3800]) - 0.3536).abs() < 0.02);
    }

    #[test]
    fn wav_files_of_any_shape_load_as_8k_mono() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        for s in tone(16000, 400.0, 1.0) {
            w.write_sample((s * 32767.0) as i16).unwrap();
            w.write_sample((s * 32767.0) as i16).unwrap();
        }
        w.finalize().unwrap();
        let s = load_wav(&p).unwrap();
        assert_eq!(s.len(), 8000);
        assert!(s[4000].unsigned_abs() < 17000);
        let peak = s[1000..7000]
            .iter()
            .map(|v| v.unsigned_abs())
            .max()
            .unwrap();
        assert!((15500..=17000).contains(&peak), "peak {peak}");
        // Not a WAV: a clear error naming the file.
        let bad = dir.path().join("bad.wav");
        std::fs::write(&bad, b"not a wav").unwrap();
        let e = load_wav(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.wav"), "{e}");
    }

    #[test]
    fn queue_barge_in_and_finish_events() {
        let mut p = Player::new();
        let a: Samples = vec![1i16; 400].into();
        p.enqueue(Item::Prompt {
            id: 1,
            samples: a.clone(),
            barge_in: false,
        });
        p.enqueue(Item::Silence { id: 2, samples: 60 });
        p.enqueue(Item::Prompt {
            id: 3,
            samples: a,
            barge_in: true,
        });
        let mut out = [0i16; 160];
        assert_eq!(p.fill(&mut out).finished, Vec::<u64>::new());
        assert!(
            p.barge_in().is_empty(),
            "the first prompt is not interruptible"
        );
        p.fill(&mut out);
        let r = p.fill(&mut out);
        // Prompt 1 ends at 400 and the silence at 460, both in frame 3 (320..480).
        assert_eq!(r.finished, vec![1, 2]);
        assert_eq!(out[..80], [1i16; 80][..]);
        assert_eq!(out[80..140], [0i16; 60][..]);
        assert_eq!(out[140..], [1i16; 20][..]);
        assert_eq!(p.barge_in(), vec![3]);
        assert!(p.is_idle());
        assert!(!p.fill(&mut out).active);
        p.enqueue(Item::ComfortNoise {
            id: 4,
            samples: 160,
        });
        let r = p.fill(&mut out);
        assert_eq!(r.finished, vec![4]);
        assert!(out.iter().any(|&s| s != 0) && out.iter().all(|&s| s.abs() <= 30));
    }
}
