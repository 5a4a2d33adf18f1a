// Command idpbuilder runs a local Kubernetes platform with a built-in OCI registry.
// Linked as docker-credential-idpbuilder it is a Docker credential helper.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/idpbuilder/idpbuilder/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args, cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Env: os.LookupEnv})
	stop()
	os.Exit(code)
}
