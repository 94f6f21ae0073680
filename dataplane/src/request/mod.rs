//! The request as it travels: its state ([`ctx`]), what is read from it ([`inspect`], and
//! query parameters and cookies: [`params`]), the variables rendered from it ([`vars`]), its
//! normal path ([`path`]), responses made here ([`reply`], with bodies streamed from files:
//! [`stream`]), what a client may send ([`strict`]), token lists of response headers such as
//! `Vary` ([`vary`]) and its access log line ([`access_log`]). Nothing here knows the compiled
//! snapshot.

pub mod access_log;
pub mod ctx;
pub mod inspect;
pub mod params;
pub mod path;
pub mod reply;
pub mod stream;
pub mod strict;
pub mod vars;
pub mod vary;
