package elector_test

import (
	"context"
	"fmt"
	"log"
	"sync"

	"github.com/raftlease/raftlease/elector"
	"github.com/raftlease/raftlease/memstore"
)

// The shortest correct use: lead while OnElected's ctx lives, and stop
// leading the moment it is done. The ctx ends before anyone else can be
// granted the lease, even when the store hangs or is unreachable.
func Example() {
	store, err := memstore.New(memstore.Options{}) // or a *cluster.Node, or a client
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

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
	e, err := elector.New(store, opts)
	if err != nil {
		log.Fatal(err) // the options are checked against each other
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

// configRow is one row of a SQL table guarded by a fencing token:
//
//	CREATE TABLE config (id INT PRIMARY KEY, value TEXT, fence_token BIGINT);
type configRow struct {
	mu         sync.Mutex // the database's row lock
	value      string
	fenceToken uint64
}

// update does what the database does for
//
//	UPDATE config SET value = ?, fence_token = ? WHERE id = 1 AND fence_token <= ?
//
// with the writer's token in both placeholders, and returns the number of
// rows affected: 0 means a newer leader has written, so this writer is stale.
func (r *configRow) update(value string, token uint64) (rowsAffected int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fenceToken > token {
		return 0
	}
	r.value, r.fenceToken = value, token
	return 1
}

// Fencing a downstream resource. Leader a starts a write with its token,
// then stalls (a GC pause, a VM migration, SIGSTOP) while it loses
// leadership and b is elected. Here a steps down with Release; a lease
// that expires during the stall has the same effect. When a's stalled
// write finally runs, the row's fence_token condition refuses it;
// elector.Fence does the same for resources without such a condition.
func Example_fencing() {
	ctx := context.Background()
	store, err := memstore.New(memstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	newElector := func(holder string) *elector.Elector {
		opts := elector.Balanced()
		opts.Name, opts.Holder = "config-writer", holder
		e, err := elector.New(store, opts)
		if err != nil {
			log.Fatal(err)
		}
		return e
	}
	a, b := newElector("a"), newElector("b")
	defer a.Close()
	defer b.Close()
	row := &configRow{value: "initial"}
	var fence elector.Fence

	if ok, err := a.TryAcquire(ctx); !ok || err != nil {
		log.Fatal("a was not elected: ", err)
	}
	tokenA, _ := a.Token()
	fmt.Println("a leads with token", tokenA)
	fmt.Println("a writes:", row.update("from a", tokenA), "row(s);", fence.Check("config/1", tokenA))

	// a stalls, holding tokenA, and loses leadership; b is elected.
	if err := a.Release(ctx); err != nil {
		log.Fatal(err)
	}
	if ok, err := b.TryAcquire(ctx); !ok || err != nil {
		log.Fatal("b was not elected: ", err)
	}
	tokenB, _ := b.Token()
	fmt.Println("b leads with token", tokenB)
	fmt.Println("b writes:", row.update("from b", tokenB), "row(s);", fence.Check("config/1", tokenB))

	// a wakes up and finishes its write with the token it had.
	fmt.Println("a writes:", row.update("stale write from a", tokenA), "row(s);", fence.Check("config/1", tokenA))
	fmt.Println("row:", row.value)
	// Output:
	// a leads with token 1
	// a writes: 1 row(s); <nil>
	// b leads with token 2
	// b writes: 1 row(s); <nil>
	// a writes: 0 row(s); raftlease: stale fencing token: key "config/1": token 1 is lower than 2, already seen
	// row: from b
}

// The worst-case failover time of each timing profile.
func ExampleOptions_WorstCaseFailover() {
	for _, p := range []struct {
		name string
		opts elector.Options
	}{{"FastFailover", elector.FastFailover()}, {"Balanced", elector.Balanced()}, {"LowTraffic", elector.LowTraffic()}} {
		fmt.Printf("%-12s lease %-4v renew every %-5v worst-case failover %v\n",
			p.name, p.opts.LeaseDuration, p.opts.RenewInterval, p.opts.WorstCaseFailover())
	}
	// Output:
	// FastFailover lease 2s   renew every 500ms worst-case failover 2.65s
	// Balanced     lease 10s  renew every 3s    worst-case failover 13s
	// LowTraffic   lease 1m0s renew every 20s   worst-case failover 1m10s
}
