package cluster_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/raftlease/raftlease/cluster"
	"github.com/raftlease/raftlease/elector"
)

// The embedded mode: every instance of a service runs a node, and an
// elector on the local node decides which instance leads. This is the
// README's quick start, with one instance.
func Example_embedded() {
	dir, err := os.MkdirTemp("", "raftlease-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	opts := cluster.LocalOptions() // DefaultOptions() across machines
	opts.ID = "billing-1"
	opts.DataDir = dir
	opts.BindAddr = "127.0.0.1:0" // e.g. "10.0.0.1:7080"
	opts.Bootstrap = true         // the other instances call node.Join(ctx, "10.0.0.1:7080", false)
	node, err := cluster.New(opts)
	if err != nil {
		log.Fatal(err)
	}
	defer node.Shutdown(context.Background())

	elected := make(chan struct{})
	eopts := elector.Balanced()
	eopts.Name = "billing-scheduler"
	eopts.Holder = opts.ID
	eopts.ReleaseOnStop = true
	eopts.OnElected = func(ctx context.Context) {
		token, _ := elector.TokenFromContext(ctx)
		fmt.Println("billing-1 leads with token", token)
		close(elected)
		<-ctx.Done() // lead until ctx is done; send the token with every guarded write
	}
	e, err := elector.New(node, eopts)
	if err != nil {
		log.Fatal(err)
	}
	if err := e.Start(); err != nil {
		log.Fatal(err)
	}
	<-elected
	if err := e.Stop(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// billing-1 leads with token 1
}
