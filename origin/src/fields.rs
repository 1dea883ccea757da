//! Collecting field problems, so one answer lists every bad field at once.
//!
//! [`Check`] gathers [`FieldProblem`]s while a request is validated; [`Check::finish`] turns
//! them into [`Invalid`], which the HTTP layer renders as `422` with the `errors` member.

use users_core::problem::FieldProblem;

/// One or more fields are invalid.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} field(s) are invalid", .0.len())]
pub struct Invalid(pub Vec<FieldProblem>);

impl Invalid {
    /// One field is invalid.
    pub fn field(name: &str, detail: impl std::fmt::Display) -> Self {
        Self(vec![FieldProblem::new(name, detail)])
    }
}

/// Collects field problems so one response lists every bad field.
#[derive(Debug, Default)]
pub struct Check {
    errors: Vec<FieldProblem>,
}

impl Check {
    /// A required field.
    pub fn required<'a>(&mut self, name: &str, value: Option<&'a str>) -> Option<&'a str> {
        if value.is_none() {
            self.errors.push(FieldProblem::new(name, "is required"));
        }
        value
    }

    /// Keeps the parsed value, or records why it failed.
    pub fn field<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        result
            .map_err(|e| self.errors.push(FieldProblem::new(name, e)))
            .ok()
    }

    pub fn fail(&mut self, name: &str, detail: impl std::fmt::Display) {
        self.errors.push(FieldProblem::new(name, detail));
    }

    pub fn finish(self) -> Result<(), Invalid> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Invalid(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_listed_in_order() {
        let mut check = Check::default();
        assert_eq!(check.required("a", None), None);
        assert_eq!(check.field("b", "7".parse::<u8>()), Some(7));
        assert_eq!(check.field("c", "x".parse::<u8>()), None);
        check.fail("d", "is wrong");
        let Invalid(errors) = check.finish().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["a", "c", "d"]);
    }

    #[test]
    fn a_clean_check_passes() {
        let mut check = Check::default();
        check.required("a", Some("x"));
        assert!(check.finish().is_ok());
    }
}
