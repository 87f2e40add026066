//! One client module per service kind.
