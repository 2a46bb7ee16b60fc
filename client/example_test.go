package client_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"os"

	"github.com/raftlease/raftlease/client"
	"github.com/raftlease/raftlease/cluster"
	"github.com/raftlease/raftlease/elector"
	"github.com/raftlease/raftlease/transport"
)

// The shortest correct use: an elector on a client of a leasenode
// cluster. Lead while OnElected's ctx lives, and stop the moment it is
// done: the elector cancels it before anyone else can be granted the
// lease, even when the cluster is unreachable.
func Example() {
	endpoint, stop := startLeasenode() // stands in for: leasenode agent --http 10.0.0.1:7070 ...
	defer stop()

	c, err := client.New(client.Options{
		Endpoints: []string{endpoint}, // list every node: "10.0.0.1:7070", "10.0.0.2:7070", ...
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	elected := make(chan struct{})
	opts := elector.Balanced()
	opts.Name = "billing-scheduler"
	opts.Holder = "node-1"
	opts.ReleaseOnStop = true
	opts.OnElected = func(ctx context.Context) {
		token, _ := elector.TokenFromContext(ctx)
		fmt.Println("leading with token", token)
		close(elected)
		<-ctx.Done() // do the leader's work until ctx is done
		fmt.Println("stopped leading")
	}
	e, err := elector.New(c, opts)
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
	// leading with token 1
	// stopped leading
}

// startLeasenode runs a one-node cluster serving the HTTP API on
// loopback, as `leasenode dev` does, and returns its address.
func startLeasenode() (endpoint string, stop func()) {
	dir, err := os.MkdirTemp("", "raftlease-example-")
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	o := cluster.LocalOptions()
	o.ID, o.DataDir, o.Bootstrap = "n0", dir, true
	o.APIAddr = srv.Listener.Addr().String()
	node, err := cluster.New(o)
	if err != nil {
		log.Fatal(err)
	}
	h, err := transport.NewHandler(node, transport.HandlerOptions{})
	if err != nil {
		log.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	return o.APIAddr, func() {
		_ = node.Close()
		srv.Close()
		os.RemoveAll(dir)
	}
}
