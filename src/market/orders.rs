//! Lead and order states, and which moves between them are allowed.

use super::states::string_enum;

string_enum! {
    /// Lead statuses in a seller's inbox (`leads.status`).
    pub enum LeadStatus {
        New = "new",
        Contacted = "contacted",
        Converted = "converted",
        Lost = "lost",
    }
}

string_enum! {
    /// Where an order is (`orders.status`).
    pub enum OrderStatus {
        Initiated = "initiated",
        Confirmed = "confirmed",
        Shipped = "shipped",
        Delivered = "delivered",
        Cancelled = "cancelled",
    }
}

impl OrderStatus {
    /// initiated → confirmed → shipped → delivered; anything not yet delivered may be cancelled.
    pub fn can_move_to(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Initiated, Confirmed)
                | (Confirmed, Shipped)
                | (Shipped, Delivered)
                | (Initiated | Confirmed | Shipped, Cancelled)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;

    #[test]
    fn orders_move_forward_or_get_cancelled() {
        assert!(Initiated.can_move_to(Confirmed));
        assert!(Shipped.can_move_to(Delivered));
        assert!(Confirmed.can_move_to(Cancelled));
        assert!(!Delivered.can_move_to(Cancelled));
        assert!(!Initiated.can_move_to(Shipped));
        assert!(!Cancelled.can_move_to(Confirmed));
        assert!("converted".parse::<LeadStatus>().is_ok() && "won".parse::<LeadStatus>().is_err());
    }
}
