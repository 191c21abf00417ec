# Reads infra/kafka/acls.toml, the definition the local broker enforces (localinfra), so Terraform
# grants exactly the same. Terraform has no TOML decoder; the definition keeps to a subset that
# two regular expressions turn into JSON: [principal] tables of string arrays, # comments.
locals {
  # Comments out, and the trailing commas TOML allows in arrays (JSON does not).
  text   = replace(replace(file(var.acl_file), "/#[^\n]*/", ""), "/,\\s*\\]/", "]")
  chunks = split("\n[", "\n${local.text}")
  principals = {
    for chunk in slice(local.chunks, 1, length(local.chunks)) :
    regex("^([A-Za-z0-9_-]+)\\]", chunk)[0] => {
      for kind in var.grant_kinds :
      kind => try(jsondecode(regex("(?m)^${kind}\\s*=\\s*(\\[[^\\]]*\\])", chunk)[0]), [])
    }
  }
}
