//! The text `doctor` prints: one line per check (and its fix), then the counts.

use super::{Report, Status};

impl Report {
    /// The checks as `doctor` prints them on a terminal.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.checks {
            s += &format!("{:<4}  {:<26} {}\n", c.status.as_str(), c.name, c.why);
            if let Some(f) = &c.fix {
                s += &format!("{:<4}  {:<26} fix: {f}\n", "", "");
            }
        }
        s + &format!(
            "{} ok, {} warnings, {} failures\n",
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Fail)
        )
    }
}
