//! The IVR language: flows written by designers as YAML files under `dialplans/`
//! (documented in `dialplans/README.md`), loaded with every problem located by line and
//! column (`decode`, `check`), interpreted by a sans-IO engine (`engine`), run without
//! audio by the simulator and the test runner (`sim`), served and hot-reloaded from a
//! directory (`set`). Depends on `media::player` (prompt audio) and nothing that does
//! I/O at run time; `tts` runs espeak-ng for `say`.

pub mod check;
pub mod cli;
pub mod compile;
pub mod decode;
pub mod engine;
pub mod model;
pub mod problem;
pub mod set;
pub mod sim;
pub mod template;
pub mod tts;
pub mod yaml;

pub use compile::{load_file, load_str};
pub use decode::LoadOptions;
pub use engine::{CallInfo, Ending, FlowSource, Input, Output, Run};
pub use model::Flow;
pub use problem::Problem;
pub use set::{FlowSet, Library};

#[cfg(test)]
mod tests;
