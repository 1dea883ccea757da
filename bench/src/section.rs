//! A section of a markdown report between two markers (`<!-- name:begin -->` and
//! `<!-- name:end -->`), rewritten in place (or appended) so the rest of the file stays: how
//! the edge and transfer benchmarks write into `docs/benchmarks.md`.

use std::path::Path;

/// `existing` with the section between `begin` and `end` replaced by `section` (which holds
/// the markers), or `section` appended.
pub fn splice(existing: &str, (begin, end): (&str, &str), section: &str) -> String {
    match (existing.find(begin), existing.find(end)) {
        (Some(a), Some(b)) => {
            let rest = existing[b + end.len()..].trim_start_matches('\n');
            format!("{}{section}{rest}", &existing[..a])
        }
        _ => format!("{existing}\n{section}"),
    }
}

/// `report` followed by every section of `existing` whose markers `kept` lists (in that order):
/// how a report that rewrites the whole file keeps what the other benchmarks wrote into it.
pub fn carry(existing: &str, report: String, kept: &[(&str, &str)]) -> String {
    kept.iter().fold(report, |out, &(begin, end)| {
        match (existing.find(begin), existing.find(end)) {
            (Some(a), Some(b)) if a < b => {
                let section = format!("{}\n", &existing[a..b + end.len()]);
                splice(&out, (begin, end), &section)
            }
            _ => out,
        }
    })
}

/// Writes `section` between `markers` into the markdown file at `path` (created if missing).
pub fn write(path: &Path, markers: (&str, &str), section: &str) -> anyhow::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    std::fs::write(path, splice(&existing, markers, section))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_replaced_in_place_or_appended() {
        let (begin, end) = ("<!-- x:begin -->", "<!-- x:end -->");
        let new = format!("{begin}\nnew\n{end}\n");
        let doc = format!("# Benchmarks\n\n{begin}\nold\n{end}\n\n## Next\n");
        assert_eq!(
            splice(&doc, (begin, end), &new),
            format!("# Benchmarks\n\n{begin}\nnew\n{end}\n## Next\n")
        );
        assert_eq!(
            splice("# Benchmarks\n", (begin, end), &new),
            format!("# Benchmarks\n\n{begin}\nnew\n{end}\n")
        );
    }

    #[test]
    fn a_rewritten_report_carries_the_other_sections_over() {
        let (x, y) = (
            ("<!-- x:begin -->", "<!-- x:end -->"),
            ("<!-- y:begin -->", "<!-- y:end -->"),
        );
        let old = format!(
            "# Old\n\n{}\nx figures\n{}\n\n{}\ny figures\n{}\n",
            x.0, x.1, y.0, y.1
        );
        let new = carry(&old, "# New\n".to_owned(), &[x, y]);
        assert_eq!(
            new,
            format!(
                "# New\n\n{}\nx figures\n{}\n\n{}\ny figures\n{}\n",
                x.0, x.1, y.0, y.1
            )
        );
        // Run again over its own output: nothing doubles.
        assert_eq!(carry(&new, "# New\n".to_owned(), &[x, y]), new);
        // A section the file never had is not invented.
        assert_eq!(carry("# Old\n", "# New\n".to_owned(), &[x]), "# New\n");
    }
}
