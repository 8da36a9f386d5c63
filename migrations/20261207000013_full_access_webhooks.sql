-- Keys made with the `full_access` group hold that group's scopes as they were then: the group
-- now includes `webhooks:manage`, and a key labelled full access is expected to have it.
UPDATE api_keys SET scopes = array_append(scopes, 'webhooks:manage')
 WHERE scope_group = 'full_access' AND NOT ('webhooks:manage' = ANY (scopes));
