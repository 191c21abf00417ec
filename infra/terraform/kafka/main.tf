# The platform's topics, one SCRAM user per principal of infra/kafka/acls.toml and exactly its
# ACLs: the same definition `make run` applies to the local broker (localinfra/kafka_access.py).
module "definition" {
  source   = "./acls"
  acl_file = coalesce(var.acl_file, "${path.module}/../../kafka/acls.toml")
}

locals {
  principals = module.definition.principals

  # The clinical record: kept forever, never on a replica that missed acknowledged writes.
  durable = {
    "retention.ms"                   = "-1"
    "retention.bytes"                = "-1"
    "cleanup.policy"                 = "delete"
    "min.insync.replicas"            = tostring(var.min_insync_replicas)
    "unclean.leader.election.enable" = "false"
  }
  topics = merge(
    {
      for service in var.event_services : "clinical.${service}.events.v1" => {
        partitions = var.event_partitions
        config     = merge(local.durable, { "compression.type" = "zstd" })
      }
    },
    # Each event topic's layout record (partitions and writer replicas), one partition.
    { for service in var.event_services : "clinical.${service}.events.v1.layout" => { partitions = 1, config = local.durable } },
    {
      "clinical.audit.access.v1"      = { partitions = var.access_audit_partitions, config = local.durable }
      "clinical.audit.checkpoints.v1" = { partitions = 1, config = local.durable }
    },
  )

  # Per kind of grant: the resource type and operations (as localinfra's GRANTS).
  grants = {
    produce           = { type = "Topic", operations = ["Write", "Describe", "Create", "DescribeConfigs"] }
    consume           = { type = "Topic", operations = ["Read", "Describe", "Create", "DescribeConfigs"] }
    groups            = { type = "Group", operations = ["Read", "Describe"] }
    transactional_ids = { type = "TransactionalID", operations = ["Write", "Describe"] }
  }
  acls = merge([
    for principal, grants in local.principals : merge([
      for kind, spec in local.grants : {
        for pair in setproduct(grants[kind], spec.operations) :
        "${principal}/${kind}/${pair[0]}/${pair[1]}" => {
          principal = principal
          type      = spec.type
          name      = pair[0]
          operation = pair[1]
        }
      }
    ]...)
  ]...)
}

resource "kafka_topic" "this" {
  for_each = local.topics

  name               = each.key
  partitions         = each.value.partitions
  replication_factor = var.replication_factor
  config             = each.value.config
}

resource "random_password" "scram" {
  for_each = local.principals

  length  = 32
  special = false
}

resource "kafka_user_scram_credential" "service" {
  for_each = local.principals

  username         = each.key
  scram_mechanism  = "SCRAM-SHA-512"
  scram_iterations = var.scram_iterations
  password         = random_password.scram[each.key].result
}

resource "kafka_acl" "grant" {
  for_each = local.acls

  acl_principal                = "User:${each.value.principal}"
  acl_host                     = "*"
  acl_operation                = each.value.operation
  acl_permission_type          = "Allow"
  resource_type                = each.value.type
  resource_name                = each.value.name
  resource_pattern_type_filter = "Prefixed"
}
