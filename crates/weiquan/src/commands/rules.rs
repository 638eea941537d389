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
            writeln!(
                out,
                "# {}: valid; merged with the built-in rulebook (`weiquan rules` prints that one with its comments)\n",
                path.display()
            )?;
            out.write_all(rules.to_toml()?.as_bytes())?;
        }
    }
    Ok(())
}
