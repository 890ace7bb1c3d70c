//! The pages a person sees: the landing page at `/` (`home.rs`), `/devicelogin` (enter a code, sign in, approve or deny) and
//! `/{tenant}/oauth2[/v2.0]/authorize` (sign in, then back to the app's loopback redirect).
//!
//! Pages are rendered here with no external assets (they work offline), every form carries a
//! CSRF token bound to a cookie, cookies are HttpOnly and SameSite=Strict (and Secure over
//! HTTPS); failed codes and passwords are limited in core (`mlgate_core::lockout`). Security-critical.

pub mod authorize;
pub mod changepassword;
pub mod console;
pub mod cookies;
pub mod devicelogin;
pub mod home;
pub mod pages;
