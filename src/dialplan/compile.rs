//! Compiles a flow: decodes it (`decode`), then checks it as a whole (`check`), so
//! neither of those modules needs the other.

use super::check::{check_flow, check_tests};
use super::decode::{decode_str, decode_tests, read, LoadOptions};
use super::model::Flow;
use super::problem::Problem;
use std::path::Path;

/// Loads and checks a flow from text (`file` names it in problems and anchors prompt
/// paths).
pub fn load_str(text: &str, file: &Path, opts: &LoadOptions) -> Result<Flow, Vec<Problem>> {
    let flow = decode_str(text, file, opts)?;
    let mut problems = check_flow(&flow);
    problems.extend(check_tests(&flow, &flow.tests, file));
    if problems.is_empty() {
        Ok(flow)
    } else {
        problems.sort();
        problems.dedup();
        Err(problems)
    }
}

/// Loads and checks one flow file, with the tests beside it in `<name>.test.yaml`.
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Flow, Vec<Problem>> {
    let text = read(path)?;
    let mut flow = load_str(&text, path, opts)?;
    let side = path.with_extension("test.yaml");
    if side.exists() && !path.to_string_lossy().ends_with(".test.yaml") {
        let (mut more, mut problems) = decode_tests(&read(&side)?, &side, opts)?;
        problems.extend(check_tests(&flow, &more, &side));
        if !problems.is_empty() {
            return Err(problems);
        }
        flow.tests.append(&mut more);
    }
    Ok(flow)
}
