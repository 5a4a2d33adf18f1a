// Package registryapi holds the wire types of the registry's own admin API
// (paths under /api/v1/), shared by the server (pkg/registry) and its client
// (pkg/registryclient) so that neither imports the other. It has no logic
// beyond checking a request's fields and encoding values.
package registryapi
