//! Minimal RLP encoding (what transaction signing needs). Bodies by the crypto work.
//!
//! Hand-written rather than a crate: transaction signing needs only the encoder (byte
//! strings, unsigned integers, lists), which is a few lines, and the well-kept crates
//! (`alloy-rlp`, parity `rlp`) would add dependencies for no gain. Checked against the
//! examples of the RLP specification (ethereum.org "Recursive-length prefix").

/// An RLP item: a byte string or a list of items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Bytes(Vec<u8>),
    List(Vec<Item>),
}

impl Item {
    pub fn bytes(b: impl AsRef<[u8]>) -> Item {
        Item::Bytes(b.as_ref().to_vec())
    }

    /// An unsigned integer: big-endian without leading zero bytes (0 is the empty string).
    pub fn uint(v: u128) -> Item {
        Item::Bytes(be_minimal(v))
    }

    pub fn list(items: impl IntoIterator<Item = Item>) -> Item {
        Item::List(items.into_iter().collect())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Item::Bytes(b) if b.len() == 1 && b[0] < 0x80 => out.push(b[0]),
            Item::Bytes(b) => {
                header(out, 0x80, b.len());
                out.extend_from_slice(b);
            }
            Item::List(items) => out.extend_from_slice(&encode_list(items)),
        }
    }
}

impl From<u64> for Item {
    fn from(v: u64) -> Item {
        Item::uint(v.into())
    }
}

impl From<u128> for Item {
    fn from(v: u128) -> Item {
        Item::uint(v)
    }
}

/// Encodes a byte string.
pub fn encode_bytes(b: &[u8]) -> Vec<u8> {
    Item::bytes(b).encode()
}

/// Encodes an unsigned integer (minimal big-endian).
pub fn encode_uint(v: u128) -> Vec<u8> {
    Item::uint(v).encode()
}

/// Encodes a list of items.
pub fn encode_list(items: &[Item]) -> Vec<u8> {
    let mut payload = Vec::new();
    for item in items {
        item.encode_into(&mut payload);
    }
    let mut out = Vec::with_capacity(payload.len() + 9);
    header(&mut out, 0xc0, payload.len());
    out.extend_from_slice(&payload);
    out
}

/// Big-endian bytes without leading zeros; empty for 0.
fn be_minimal(v: u128) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = (v.leading_zeros() / 8) as usize;
    bytes[skip..].to_vec()
}

/// Short form for payloads under 56 bytes, else offset+55+len(len) then the length.
fn header(out: &mut Vec<u8>, offset: u8, len: usize) {
    if len < 56 {
        out.push(offset + len as u8);
    } else {
        let len_bytes = be_minimal(len as u128);
        out.push(offset + 55 + len_bytes.len() as u8);
        out.extend_from_slice(&len_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Examples from the RLP specification, ethereum.org
    // developers/docs/data-structures-and-encoding/rlp "Examples".
    #[test]
    fn specification_examples() {
        assert_eq!(encode_bytes(b"dog"), [0x83, b'd', b'o', b'g']);
        assert_eq!(
            Item::list([Item::bytes("cat"), Item::bytes("dog")]).encode(),
            [0xc8, 0x83, b'c', b'a', b't', 0x83, b'd', b'o', b'g']
        );
        assert_eq!(encode_bytes(b""), [0x80]);
        assert_eq!(encode_list(&[]), [0xc0]);
        assert_eq!(encode_uint(0), [0x80]);
        assert_eq!(encode_bytes(&[0x00]), [0x00]);
        assert_eq!(encode_uint(15), [0x0f]);
        assert_eq!(encode_bytes(&[0x0f]), [0x0f]);
        assert_eq!(encode_uint(1024), [0x82, 0x04, 0x00]);
        // The set-theoretical representation of three: [ [], [[]], [ [], [[]] ] ].
        let empty = || Item::list([]);
        let three = Item::list([
            empty(),
            Item::list([empty()]),
            Item::list([empty(), Item::list([empty()])]),
        ]);
        assert_eq!(
            three.encode(),
            [0xc7, 0xc0, 0xc1, 0xc0, 0xc3, 0xc0, 0xc1, 0xc0]
        );
        // A 56-byte string takes the long form.
        let lorem = b"Lorem ipsum dolor sit amet, consectetur adipisicing elit";
        assert_eq!(lorem.len(), 56);
        let enc = encode_bytes(lorem);
        assert_eq!(&enc[..2], &[0xb8, 0x38]);
        assert_eq!(&enc[2..], lorem);
    }

    #[test]
    fn single_bytes_and_boundaries() {
        assert_eq!(encode_uint(0x7f), [0x7f]);
        assert_eq!(encode_uint(0x80), [0x81, 0x80]);
        assert_eq!(encode_bytes(&[0x80]), [0x81, 0x80]);
        assert_eq!(encode_uint(u64::MAX as u128).len(), 9);
        assert_eq!(encode_uint(u128::MAX)[0], 0x80 + 16);
        // 55 bytes: short form; 56: long form; 256: two length bytes.
        assert_eq!(encode_bytes(&[1; 55])[0], 0xb7);
        assert_eq!(encode_bytes(&[1; 256])[..3], [0xb9, 0x01, 0x00]);
        let long_list = Item::list((0..60u64).map(|_| Item::from(1u64)));
        assert_eq!(long_list.encode()[..2], [0xf8, 60]);
    }
}
