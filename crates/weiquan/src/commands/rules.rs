//! `weiquan rules`: print the rulebook in effect.

use crate::cli::RulesArgs;
use anyhow::Result;
use std::io::Write;

/// Prints the built-in rulebook, or checks `--rules` and prints the merged result.
pub fn run(args: &RulesArgs, out: &mut dyn Write) -> Result<()> {
    match &args.rules {
        None => out.write_all(weiquan_engine::BUILTIN_RULEBOOK.as_bytes())?,
        Some(path) => {
            let rules = super::load_rules(Some(path))?;
            writeln!(out, "# {}: valid; merged with the built-in rulebook", path.display())?;
            for &id in weiquan_engine::RuleId::ALL {
                let t = rules.text(id);
                writeln!(out, "{id}\t{}\t{}", t.severity.as_str(), t.citation)?;
            }
        }
    }
    Ok(())
}
