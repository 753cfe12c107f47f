//! Lead and order states, and which moves between them are allowed.

/// Lead statuses in a seller's inbox.
pub const LEAD_STATUSES: [&str; 4] = ["new", "contacted", "converted", "lost"];

pub fn is_lead_status(s: &str) -> bool {
    LEAD_STATUSES.contains(&s)
}

/// initiated → confirmed → shipped → delivered; anything not yet delivered may be cancelled.
pub fn order_can_move(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("initiated", "confirmed")
            | ("confirmed", "shipped")
            | ("shipped", "delivered")
            | ("initiated" | "confirmed" | "shipped", "cancelled")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_move_forward_or_get_cancelled() {
        assert!(order_can_move("initiated", "confirmed"));
        assert!(order_can_move("shipped", "delivered"));
        assert!(order_can_move("confirmed", "cancelled"));
        assert!(!order_can_move("delivered", "cancelled"));
        assert!(!order_can_move("initiated", "shipped"));
        assert!(!order_can_move("cancelled", "confirmed"));
        assert!(is_lead_status("converted") && !is_lead_status("won"));
    }
}
