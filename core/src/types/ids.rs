//! Newtype identifiers, so a region id can never be passed where a peer id is expected.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw integer, for the wire and for keys.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl From<u64> for $name {
            fn from(raw: u64) -> Self {
                Self(raw)
            }
        }
    };
}

id_type!(
    /// A region: a contiguous key range replicated by one Raft group.
    RegionId
);
id_type!(
    /// One replica of a region, unique across the cluster.
    PeerId
);
id_type!(
    /// A store (one server process with one data directory).
    StoreId
);
id_type!(
    /// A Raft term.
    Term
);
id_type!(
    /// A position in a Raft log.
    LogIndex
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_format_with_their_kind() {
        assert_eq!(format!("{:?}", RegionId(7)), "RegionId(7)");
        assert_eq!(format!("{}", PeerId(9)), "9");
        assert_eq!(StoreId::from(3).get(), 3);
        assert!(LogIndex(2) > LogIndex(1));
    }
}
