//! What the demo application's handlers share: the notification they send.

pub mod notifications;
