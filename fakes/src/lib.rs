//! Fake social platforms (filled in by the fakes work).
