//! The Azure resources a topology needs (`Planning::desired`), offline: no credentials,
//! so `plan` shows every resource before anything exists. The resource tree is in the
//! module docs of `azure`.

use super::*;

impl AzureProvider {
    pub(super) fn desired_resources(
        &self,
        topology: &Topology,
        state: Option<&State>,
    ) -> Result<Vec<Resource>, ProviderError> {
        let cfg = &self.config;
        if topology.client.geth != PINNED_GETH {
            return Err(ProviderError::Other(format!(
                "client.geth {:?}: Azure VMs install geth {PINNED_GETH} from its official release archive (verified by SHA-256); set client.geth: {PINNED_GETH}",
                topology.client.geth
            )));
        }
        super::custom_data::check(topology).map_err(ProviderError::Other)?;
        let l =
            layout::layout(topology, &cfg.address_space, state).map_err(ProviderError::Other)?;
        let net = &topology.network.name;
        let tags = self.tags(net);
        let space = l.address_space.to_string();
        let nodes = topology.nodes();
        let peering = Peering::plan(&nodes);
        let mut out = vec![
            Resource {
                addr: RG_ADDR.into(),
                kind: Kind::AzureResourceGroup,
                attrs: json!({"name": cfg.resource_group, "location": cfg.location, "tags": tags}),
                deps: vec![],
                summary: format!(
                    "resource group {} in {}, tagged managed-by=consort",
                    cfg.resource_group, cfg.location
                ),
            },
            Resource {
                addr: VNET_ADDR.into(),
                kind: Kind::AzureVnet,
                attrs: json!({"name": vnet_name(net), "location": cfg.location, "address_space": space}),
                deps: vec![RG_ADDR.into()],
                summary: format!("virtual network {} {space}", vnet_name(net)),
            },
            Resource {
                addr: VAULT_ADDR.into(),
                kind: Kind::AzureVault,
                attrs: json!({"name": vault_name(net, &cfg.resource_group, &cfg.location), "location": cfg.location}),
                deps: vec![RG_ADDR.into()],
                summary: format!(
                    "key vault {} (RBAC, soft delete {} days): every node's secrets, each readable only by its own VM",
                    vault_name(net, &cfg.resource_group, &cfg.location),
                    arm::vault::SOFT_DELETE_DAYS
                ),
            },
            Resource {
                addr: NAT_PIP_ADDR.into(),
                kind: Kind::AzurePublicIp,
                attrs: json!({"name": nat_pip_name(net), "location": cfg.location, "sku": "Standard", "allocation": "Static"}),
                deps: vec![RG_ADDR.into()],
                summary: format!("public IP {} (Standard, static) for outbound traffic", nat_pip_name(net)),
            },
            Resource {
                addr: NAT_ADDR.into(),
                kind: Kind::AzureNatGateway,
                attrs: json!({"name": nat_gateway_name(net), "location": cfg.location, "public_ip": nat_pip_name(net)}),
                deps: vec![NAT_PIP_ADDR.into()],
                summary: format!(
                    "NAT gateway {}: the subnets' outbound internet (geth download), no inbound",
                    nat_gateway_name(net)
                ),
            },
        ];
        for m in &topology.members {
            let tx_ips: Vec<String> = nodes
                .iter()
                .filter(|n| n.member == m.name && n.role == Role::Tx)
                .map(|n| l.ip(&n.name))
                .collect();
            let rules = arm::rules::member_rules(
                &space,
                &tx_ips,
                &cfg.allowed_rpc_cidrs,
                &cfg.allowed_ssh_cidrs,
            );
            let rpc = if rules.iter().any(|r| r.name == "allow-rpc") {
                format!(
                    "RPC 8545 on tx nodes from {}",
                    cfg.allowed_rpc_cidrs.join(", ")
                )
            } else {
                "no RPC".into()
            };
            let ssh = if cfg.allowed_ssh_cidrs.is_empty() {
                "no SSH".to_string()
            } else {
                format!("SSH from {}", cfg.allowed_ssh_cidrs.join(", "))
            };
            out.push(Resource {
                addr: nsg_addr(&m.name),
                kind: Kind::AzureNsg,
                attrs: json!({"name": nsg_name(&m.name), "location": cfg.location, "rules": rules}),
                deps: vec![RG_ADDR.into()],
                summary: format!(
                    "network security group {}: p2p 30303 from {space}, {rpc}, {ssh}, deny the rest",
                    nsg_name(&m.name)
                ),
            });
            out.push(Resource {
                addr: subnet_addr(&m.name),
                kind: Kind::AzureSubnet,
                attrs: json!({
                    "name": subnet_name(&m.name),
                    "vnet": vnet_name(net),
                    "address_prefix": l.subnets[&m.name].to_string(),
                    "nsg": nsg_name(&m.name),
                    "nat_gateway": nat_gateway_name(net),
                }),
                deps: vec![VNET_ADDR.into(), nsg_addr(&m.name), NAT_ADDR.into()],
                summary: format!(
                    "subnet {} {} of {}",
                    subnet_name(&m.name),
                    l.subnets[&m.name],
                    m.name
                ),
            });
        }
        for n in &nodes {
            let tx = n.role == Role::Tx;
            if tx {
                out.push(Resource {
                    addr: pip_addr(&n.name),
                    kind: Kind::AzurePublicIp,
                    attrs: json!({"name": pip_name(&n.name), "location": cfg.location, "sku": "Standard", "allocation": "Static"}),
                    deps: vec![RG_ADDR.into()],
                    summary: format!("public IP {} (Standard, static) for {}", pip_name(&n.name), n.name),
                });
            }
            let mut nic_deps = vec![subnet_addr(&n.member), nsg_addr(&n.member)];
            if tx {
                nic_deps.push(pip_addr(&n.name));
            }
            out.push(Resource {
                addr: nic_addr(&n.name),
                kind: Kind::AzureNic,
                attrs: json!({
                    "name": nic_name(&n.name),
                    "location": cfg.location,
                    "subnet": subnet_name(&n.member),
                    "private_ip": l.ip(&n.name),
                    "public_ip": if tx { json!(pip_name(&n.name)) } else { Value::Null },
                    "nsg": nsg_name(&n.member),
                }),
                deps: nic_deps,
                summary: format!(
                    "network interface {} with static private IP {}{}",
                    nic_name(&n.name),
                    l.ip(&n.name),
                    if tx { ", public IP" } else { ", no public IP" }
                ),
            });
            let mut secret_deps = vec![VAULT_ADDR.to_string(), format!("key.node.{}", n.name)];
            if n.role == Role::Validator {
                secret_deps.push(format!("key.signer.{}", n.name));
            }
            let secrets = vault::node_secrets(&n.name, n.role);
            out.push(Resource {
                addr: secrets_addr(&n.name),
                kind: Kind::AzureSecrets,
                attrs: json!({
                    "node": n.name,
                    "names": secrets.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
                }),
                deps: secret_deps,
                summary: format!(
                    "{} in the key vault ({})",
                    secrets
                        .iter()
                        .map(|s| s.what)
                        .collect::<Vec<_>>()
                        .join(", "),
                    secrets
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
            let mut deps = vec![
                nic_addr(&n.name),
                secrets_addr(&n.name),
                format!("key.node.{}", n.name),
            ];
            if n.role == Role::Validator {
                deps.push(format!("key.signer.{}", n.name));
            }
            deps.push("genesis".into());
            deps.push("key.node.*".into());
            let size = self.vm_size(n.role);
            // Its planned peers (and itself: a full mesh digests all names).
            let mesh = mesh_digest(
                peering
                    .peers_of(&n.name)
                    .chain(std::iter::once(n.name.as_str())),
            );
            out.push(Resource {
                addr: vm_addr(&n.name),
                kind: Kind::AzureVm,
                attrs: node_attrs(
                    n,
                    topology,
                    mesh,
                    json!({
                    "name": vm_name(&n.name),
                    "location": cfg.location,
                    "size": size,
                    "image": ImageRef::ubuntu_lts().urn(),
                    "admin_username": cfg.admin_username,
                    "ssh_public_key": cfg.ssh_public_key,
                    "nic": nic_name(&n.name),
                    }),
                ),
                deps,
                summary: format!(
                    "VM {} ({size}, Ubuntu LTS, managed identity reading its own secrets): geth {} {} of {}, peered with {} other node(s)",
                    vm_name(&n.name),
                    topology.client.geth,
                    n.role,
                    n.member,
                    nodes.len() - 1
                ),
            });
        }
        out.push(super::super::clique::resource("azure.vm.*"));
        Ok(out)
    }
}
