//! A product as a seller sends it, from the seller pages (a form of typed text) or the seller
//! API (JSON, where an edit carries only what changes), and the one set of rules both pass.
//! The category is not checked here: whether a slug exists is the database's to say.

use super::money::{Currency, MAX_MINOR, Money};
use super::{FieldError, FieldErrors, text};

/// A price as it arrives.
#[derive(Debug, Clone, Copy)]
pub enum PriceInput<'a> {
    /// Typed by a person (`price`): "4500", "4,500.50", "KSh 4,500".
    Text(&'a str),
    /// Integer minor units (`price_minor`); `None` is "contact for price".
    Minor(Option<i64>),
}

/// A stock count as it arrives.
#[derive(Debug, Clone, Copy)]
pub enum StockInput<'a> {
    /// Typed by a person: a whole number, 0 or more.
    Text(&'a str),
    Count(u32),
}

/// What a seller sent; `None` is a field left out (an edit leaves it as it is).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProductDraft<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub price: Option<PriceInput<'a>>,
    /// ISO 4217 (`currency`); left out: the caller's default.
    pub currency: Option<&'a str>,
    pub stock: Option<StockInput<'a>>,
}

/// A draft that passed: each field as the store takes it, `None` where the draft left it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidProduct {
    pub name: Option<String>,
    pub description: Option<String>,
    /// `Some(None)`: "contact for price".
    pub price: Option<Option<Money>>,
    /// The currency the draft named, if it named one.
    pub currency: Option<Currency>,
    pub stock: Option<u32>,
}

impl ProductDraft<'_> {
    /// A new product needs a name and a stock count: said alone, before anything else is
    /// checked.
    pub fn require_new(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::default();
        if self.name.is_none() {
            errors.0.push(FieldError::new("name", "is required"));
        }
        if self.stock.is_none() {
            errors.0.push(FieldError::new("stock", "is required"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// A new product: [`ProductDraft::require_new`], then [`ProductDraft::validate`].
    pub fn validate_new(&self, default_currency: Currency) -> Result<ValidProduct, FieldErrors> {
        self.require_new()?;
        self.validate(default_currency)
    }

    /// Every field that is present, every problem at once: the name 2 to 200 characters, the
    /// description up to 5000, the price from 0 to [`MAX_MINOR`] minor units (typed text in
    /// the draft's currency, else `default_currency`, with at most two decimals), the currency
    /// a 3-letter code, the stock a whole number.
    pub fn validate(&self, default_currency: Currency) -> Result<ValidProduct, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = self
            .name
            .and_then(|n| errors.check(text::line("name", n, 2, 200)));
        let description = self
            .description
            .and_then(|d| errors.check(text::paragraph("description", d, 5000)));
        // Read first (a typed price is in it), said after the price as the API always did.
        let currency = self.currency.map(|c| Currency::parse(c.trim()));
        let in_currency = match currency {
            Some(Ok(c)) => c,
            _ => default_currency,
        };
        let price = match self.price {
            None => None,
            Some(PriceInput::Text(t)) => errors.check(Money::parse(t, in_currency)).map(Some),
            Some(PriceInput::Minor(None)) => Some(None),
            Some(PriceInput::Minor(Some(m))) => errors
                .check(minor_units(m).map(|m| Money::new(m, in_currency)))
                .map(Some),
        };
        let currency = currency.and_then(|c| errors.check(c));
        let stock = match self.stock {
            None => None,
            Some(StockInput::Count(n)) => Some(n),
            Some(StockInput::Text(t)) => errors.check(
                t.trim()
                    .parse::<u32>()
                    .map_err(|_| FieldError::new("stock", "must be a whole number, 0 or more")),
            ),
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ValidProduct {
            name,
            description,
            price,
            currency,
            stock,
        })
    }
}

fn minor_units(m: i64) -> Result<i64, FieldError> {
    if (0..=MAX_MINOR).contains(&m) {
        Ok(m)
    } else {
        Err(FieldError::new(
            "price_minor",
            format!("must be from 0 to {MAX_MINOR} minor units"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form<'a>(name: &'a str, price: &'a str, stock: &'a str) -> ProductDraft<'a> {
        ProductDraft {
            name: Some(name),
            description: Some(""),
            price: Some(PriceInput::Text(price)),
            currency: None,
            stock: Some(StockInput::Text(stock)),
        }
    }

    #[test]
    fn a_form_passes_with_typed_price_and_stock() {
        let p = form("Kikoi", "4,500.50", " 3 ")
            .validate(Currency::KES)
            .unwrap();
        assert_eq!(p.price, Some(Some(Money::new(450_050, Currency::KES))));
        assert_eq!((p.stock, p.currency), (Some(3), None));
    }

    #[test]
    fn every_problem_is_named_by_its_field() {
        let e = form("K", "", "many").validate(Currency::KES).unwrap_err();
        let fields: Vec<_> = e.0.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "price", "stock"]);
        let e = ProductDraft {
            price: Some(PriceInput::Minor(Some(MAX_MINOR + 1))),
            currency: Some("ksh"),
            ..Default::default()
        }
        .validate(Currency::KES)
        .unwrap_err();
        let fields: Vec<_> = e.0.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["price_minor", "currency"]);
        assert!(
            form("Kikoi", "100000001", "1")
                .validate(Currency::KES)
                .is_err()
        );
    }

    #[test]
    fn an_edit_checks_only_what_it_sends_and_a_new_product_needs_name_and_stock() {
        let edit = ProductDraft {
            price: Some(PriceInput::Minor(None)),
            currency: Some("USD"),
            ..Default::default()
        };
        let p = edit.validate(Currency::KES).unwrap();
        assert_eq!(p.price, Some(None));
        assert_eq!(p.currency, Some(Currency::parse("USD").unwrap()));
        assert_eq!(p.name, None);
        let e = edit.validate_new(Currency::KES).unwrap_err();
        assert_eq!(e.get("name"), Some("is required"));
        assert_eq!(e.get("stock"), Some("is required"));
    }
}
