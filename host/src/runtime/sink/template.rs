//! The `dataTemplate` stage: Oort's one Go `text/template` engine
//! (`oort_core::template`, shared with dynamic properties), compiled once per
//! rule action.

pub use oort_core::template::Template;
