//! Transactions. CONTRACT (signatures fixed; bodies by the crypto work):
//! legacy EIP-155 (v = recid + 35 + 2*chain_id) and EIP-1559 (type 0x02) signing.

use super::rlp::Item;
use super::{keccak256, Address, SecretKey};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyTx {
    pub chain_id: u64,
    pub nonce: u64,
    pub gas_price: u128,
    pub gas: u64,
    pub to: Option<Address>,
    pub value: u128,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eip1559Tx {
    pub chain_id: u64,
    pub nonce: u64,
    pub max_priority_fee_per_gas: u128,
    pub max_fee_per_gas: u128,
    pub gas: u64,
    pub to: Option<Address>,
    pub value: u128,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// The bytes for `eth_sendRawTransaction`.
    pub raw: Vec<u8>,
    /// keccak256(raw): the transaction hash.
    pub hash: [u8; 32],
}

impl SignedTx {
    pub fn raw_hex(&self) -> String {
        format!("0x{}", hex::encode(&self.raw))
    }
    pub fn hash_hex(&self) -> String {
        format!("0x{}", hex::encode(self.hash))
    }
}

fn to_item(to: &Option<Address>) -> Item {
    // Contract creation has an empty `to`.
    match to {
        Some(a) => Item::bytes(a.0),
        None => Item::bytes([]),
    }
}

/// A 32-byte signature value as an RLP integer (leading zeros stripped).
fn sig_item(x: &[u8; 32]) -> Item {
    let start = x.iter().position(|b| *b != 0).unwrap_or(32);
    Item::bytes(&x[start..])
}

fn finish(raw: Vec<u8>) -> SignedTx {
    let hash = keccak256(&raw);
    SignedTx { raw, hash }
}

impl LegacyTx {
    fn fields(&self) -> Vec<Item> {
        vec![
            self.nonce.into(),
            self.gas_price.into(),
            self.gas.into(),
            to_item(&self.to),
            self.value.into(),
            Item::bytes(&self.data),
        ]
    }

    /// EIP-155 signing: keccak(rlp([nonce, gasPrice, gas, to, value, data, chainId, 0, 0]));
    /// raw = rlp([..., v, r, s]) with v = recid + 35 + 2 * chainId.
    pub fn sign(&self, key: &SecretKey) -> SignedTx {
        let mut unsigned = self.fields();
        unsigned.extend([self.chain_id.into(), Item::uint(0), Item::uint(0)]);
        let digest = keccak256(&Item::List(unsigned).encode());
        let (r, s, recid) = key.sign_prehash(&digest);
        let v = u128::from(recid) + 35 + 2 * u128::from(self.chain_id);
        let mut signed = self.fields();
        signed.extend([Item::uint(v), sig_item(&r), sig_item(&s)]);
        finish(Item::List(signed).encode())
    }
}

impl Eip1559Tx {
    fn fields(&self) -> Vec<Item> {
        vec![
            self.chain_id.into(),
            self.nonce.into(),
            self.max_priority_fee_per_gas.into(),
            self.max_fee_per_gas.into(),
            self.gas.into(),
            to_item(&self.to),
            self.value.into(),
            Item::bytes(&self.data),
            // Empty access list.
            Item::list([]),
        ]
    }

    /// EIP-1559 (type 2) signing: keccak(0x02 || rlp(first 9 fields));
    /// raw = 0x02 || rlp([..9 fields, yParity, r, s]).
    pub fn sign(&self, key: &SecretKey) -> SignedTx {
        let mut preimage = vec![0x02];
        Item::List(self.fields()).encode_into(&mut preimage);
        let digest = keccak256(&preimage);
        let (r, s, recid) = key.sign_prehash(&digest);
        let mut signed = self.fields();
        signed.extend([Item::uint(recid.into()), sig_item(&r), sig_item(&s)]);
        let mut raw = vec![0x02];
        Item::List(signed).encode_into(&mut raw);
        finish(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip155_example_from_the_eip() {
        // EIP-155 "Example" (ethereum/EIPs EIPS/eip-155.md): nonce 9, gas price 20 gwei,
        // gas 21000, to 0x3535..35, value 1 ether, no data, chain 1, key 0x4646..46.
        let tx = LegacyTx {
            chain_id: 1,
            nonce: 9,
            gas_price: 20_000_000_000,
            gas: 21000,
            to: Some(Address([0x35; 20])),
            value: 1_000_000_000_000_000_000,
            data: vec![],
        };
        // The signing data and signing hash quoted in the EIP.
        let mut unsigned = tx.fields();
        unsigned.extend([1u64.into(), Item::uint(0), Item::uint(0)]);
        let signing_data = Item::List(unsigned).encode();
        assert_eq!(
            hex::encode(&signing_data),
            "ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080"
        );
        assert_eq!(
            hex::encode(keccak256(&signing_data)),
            "daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53"
        );

        let key = SecretKey::from_hex(&"46".repeat(32)).unwrap();
        let signed = tx.sign(&key);
        assert_eq!(
            signed.raw_hex(),
            "0xf86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
        );
        // The EIP gives no hash; this one is published with the same raw transaction in
        // web3.js's eth.accounts.signTransaction tests ("transactionHash"), together with
        // the sender 0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F.
        assert_eq!(
            signed.hash_hex(),
            "0x33469b22e9f636356c4160a87eb19df52b7412e8eac32a4a55ffe88ea8350788"
        );
        assert_eq!(signed.hash, keccak256(&signed.raw));
        assert_eq!(
            key.address().to_string(),
            "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F"
        );
    }

    #[test]
    fn eip1559_vectors_from_ethereumjs() {
        // ethereumjs-monorepo packages/tx/test/json/eip1559.json (first two entries).
        // There `signedTransactionRLP` is the typed transaction wrapped as an RLP string
        // (b873 / b872 prefix, as inside a block body); the raw transaction follows it.
        // chainId 0x1e8e = 7822, empty data and access list.
        let key = SecretKey::from_hex(
            "0x8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63",
        )
        .unwrap();
        let to: Address = "0x000000000000000000000000000000000000aaaa"
            .parse()
            .unwrap();
        let cases = [
            (
                819u64, 43203529u128, 35552u64, 75853u128, 121212u128,
                "b87302f870821e8e8203338301284d8301d97c828ae094000000000000000000000000000000000000aaaa8402933bc980c080a0d067f2167008c59219652f91cbf8788dbca5f771f6e91e2b7657e85b78b472e0a01d305af9fe81fdba43f0dfcd400ed24dcace0a7e30d4e85701dcaaf484cd079e",
            ),
            (
                353, 61901619, 32593, 38850, 136295,
                "b87202f86f821e8e8201618297c283021467827f5194000000000000000000000000000000000000aaaa8403b08b3380c001a004205678f13fc1d7b10feea6513dfa76e24418b6e08097d95c6f93a3b64e536da01d45ad61bfece43862de2cce7d2575a8c1d08c26c87f3cb5f26d7b0be54a91b2",
            ),
        ];
        for (nonce, value, gas, priority, max_fee, wrapped) in cases {
            let tx = Eip1559Tx {
                chain_id: 7822,
                nonce,
                max_priority_fee_per_gas: priority,
                max_fee_per_gas: max_fee,
                gas,
                to: Some(to),
                value,
                data: vec![],
            };
            let signed = tx.sign(&key);
            // Our raw bytes, wrapped as an RLP string, give exactly the published bytes.
            assert_eq!(
                hex::encode(super::super::rlp::encode_bytes(&signed.raw)),
                wrapped
            );
            assert_eq!(signed.raw[0], 0x02);
            assert_eq!(signed.hash, keccak256(&signed.raw));
        }
    }

    #[test]
    fn contract_creation_has_an_empty_to() {
        let key = SecretKey::from_hex(&"46".repeat(32)).unwrap();
        let tx = LegacyTx {
            chain_id: 1337,
            nonce: 0,
            gas_price: 1,
            gas: 100_000,
            to: None,
            value: 0,
            data: vec![0x60, 0x00],
        };
        let raw = tx.sign(&key).raw;
        // list header, nonce 0x80, gas price 0x01, gas 0x830186a0, then to = 0x80.
        assert_eq!(&raw[2..9], &[0x80, 0x01, 0x83, 0x01, 0x86, 0xa0, 0x80]);
        // v = 35 + 2*1337 + recid = 2709 or 2710, encoded as 0x82 0x0a 0x95/0x96.
        let data_end = 9 + 1 + 3; // value 0x80, data 0x82 0x60 0x00
        assert_eq!(raw[data_end], 0x82);
        let v = u16::from_be_bytes([raw[data_end + 1], raw[data_end + 2]]);
        assert!(v == 2709 || v == 2710, "v = {v}");
    }
}
