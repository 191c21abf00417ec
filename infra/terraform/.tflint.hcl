# tflint for every module under infra/terraform (make deploy-check runs it with --recursive).
# Only the bundled Terraform ruleset: provider rulesets are plugins downloaded at run time.
config {
  call_module_type = "local"
}

plugin "terraform" {
  enabled = true
  preset  = "all"
}
