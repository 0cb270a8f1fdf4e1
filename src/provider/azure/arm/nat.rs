//! NAT gateway (`Microsoft.Network/natGateways`): explicit outbound internet for the
//! subnets (new VNets lose Azure's implicit outbound access), through its own static
//! Standard public IP.

use super::{Arm, ArmError, NETWORK_API};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub fn nat_gateway_body(
    location: &str,
    public_ip_id: &str,
    tags: &BTreeMap<String, String>,
) -> Value {
    json!({
        "location": location,
        "tags": tags,
        "sku": {"name": "Standard"},
        "properties": {
            "idleTimeoutInMinutes": 4,
            "publicIpAddresses": [{"id": public_ip_id}],
        }
    })
}

impl Arm {
    pub fn nat_gateway_id(&self, rg: &str, name: &str) -> String {
        self.resource_id(rg, "Microsoft.Network", "natGateways", name)
    }

    pub async fn put_nat_gateway(
        &self,
        rg: &str,
        name: &str,
        body: &Value,
    ) -> Result<Value, ArmError> {
        self.put_json(&self.nat_gateway_id(rg, name), NETWORK_API, body)
            .await
    }

    pub async fn delete_nat_gateway(&self, rg: &str, name: &str) -> Result<(), ArmError> {
        self.delete_json(&self.nat_gateway_id(rg, name), NETWORK_API)
            .await
    }
}
