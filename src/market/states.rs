//! The states things are in, as enums instead of strings: each is stored, serialized and shown
//! as the same lowercase word it always was (the MySQL `ENUM` values in the migrations), so
//! neither the database nor the JSON API nor a template sees a difference.
//!
//! [`string_enum!`] gives each one `as_str`, `Display`, `FromStr`, serde as the word, the word
//! compared with a `&str` (for templates), and sqlx encoding and decoding as a string: no I/O,
//! only the mapping a store needs.

/// A word that is not one of a state's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{word:?} is not one of: {expected}")]
pub struct UnknownState {
    pub word: String,
    pub expected: &'static str,
}

/// `string_enum! { /// doc  pub enum Name { Variant = "word", ... } }`
macro_rules! string_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in the order the schema lists them.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The stored and displayed word.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::market::states::UnknownState;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err($crate::market::states::UnknownState {
                        word: s.to_owned(),
                        expected: concat!($($word, " "),+).trim_ascii_end(),
                    }),
                }
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }

        impl ::sqlx::Type<::sqlx::MySql> for $name {
            fn type_info() -> ::sqlx::mysql::MySqlTypeInfo {
                <str as ::sqlx::Type<::sqlx::MySql>>::type_info()
            }
            fn compatible(ty: &::sqlx::mysql::MySqlTypeInfo) -> bool {
                <str as ::sqlx::Type<::sqlx::MySql>>::compatible(ty)
            }
        }

        impl ::sqlx::Encode<'_, ::sqlx::MySql> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut Vec<u8>,
            ) -> Result<::sqlx::encode::IsNull, ::sqlx::error::BoxDynError> {
                <&str as ::sqlx::Encode<'_, ::sqlx::MySql>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> ::sqlx::Decode<'r, ::sqlx::MySql> for $name {
            fn decode(
                value: ::sqlx::mysql::MySqlValueRef<'r>,
            ) -> Result<Self, ::sqlx::error::BoxDynError> {
                let s = <&str as ::sqlx::Decode<'r, ::sqlx::MySql>>::decode(value)?;
                Ok(s.parse::<$name>()?)
            }
        }
    };
}
pub(crate) use string_enum;

string_enum! {
    /// The seller's switch on a product (`products.status`).
    pub enum ProductStatus {
        Active = "active",
        Hidden = "hidden",
    }
}

string_enum! {
    /// An admin's decision on a product (`products.moderation`).
    pub enum Moderation {
        Approved = "approved",
        Flagged = "flagged",
        Rejected = "rejected",
    }
}

string_enum! {
    /// Where a seller stands with the admins (`sellers.status`).
    pub enum SellerStatus {
        Pending = "pending",
        Approved = "approved",
        Suspended = "suspended",
        Rejected = "rejected",
    }
}

impl SellerStatus {
    /// Pending and approved sellers may change their catalogue; rejected and suspended may not.
    pub fn may_edit(self) -> bool {
        !matches!(self, SellerStatus::Rejected | SellerStatus::Suspended)
    }
}

string_enum! {
    /// What an account may do (`users.role`).
    pub enum Role {
        User = "user",
        Admin = "admin",
    }
}

string_enum! {
    /// Whether an account may log in (`users.status`).
    pub enum UserStatus {
        Active = "active",
        Suspended = "suspended",
    }
}

string_enum! {
    /// What a text-search change touches (`search_changes.scope`): one product, every product
    /// of a seller or of a category, or everything (after a restore).
    pub enum SearchScope {
        Product = "product",
        Seller = "seller",
        Category = "category",
        All = "all",
    }
}

string_enum! {
    /// What the vector sync does with a product (`vector_outbox.op`).
    pub enum OutboxOp {
        Upsert = "upsert",
        Delete = "delete",
    }
}

string_enum! {
    /// What one archive of a backup run holds (`backups.kind`, the manifests, the config's
    /// schedule).
    pub enum BackupKind {
        Database = "database",
        Vectors = "vectors",
        Images = "images",
        Secrets = "secrets",
    }
}

string_enum! {
    /// How far an archive got (`backups.status`).
    pub enum BackupStatus {
        Running = "running",
        Ok = "ok",
        Failed = "failed",
        Pruned = "pruned",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_and_write_their_stored_words() {
        for s in SellerStatus::ALL {
            assert_eq!(s.as_str().parse::<SellerStatus>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        let e = "won".parse::<SellerStatus>().unwrap_err();
        assert_eq!(e.expected, "pending approved suspended rejected");
        assert_eq!(
            serde_json::from_str::<Role>("\"admin\"").unwrap(),
            Role::Admin
        );
        assert!(serde_json::from_str::<Role>("\"root\"").is_err());
        assert!(Moderation::Flagged == "flagged");
    }

    #[test]
    fn only_pending_and_approved_sellers_edit() {
        assert!(SellerStatus::Pending.may_edit() && SellerStatus::Approved.may_edit());
        assert!(!SellerStatus::Rejected.may_edit() && !SellerStatus::Suspended.may_edit());
    }
}
