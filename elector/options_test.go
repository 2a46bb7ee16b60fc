package elector_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/elector"
)

// fields returns the field names of the FieldErrors joined in err.
func fields(err error) []string {
	switch x := err.(type) {
	case *raftlease.FieldError:
		return []string{x.Field}
	case interface{ Unwrap() []error }:
		var out []string
		for _, e := range x.Unwrap() {
			out = append(out, fields(e)...)
		}
		return out
	case interface{ Unwrap() error }:
		return fields(x.Unwrap())
	}
	return nil
}

func named(o elector.Options) elector.Options {
	o.Name, o.Holder = "svc", "node-1"
	return o
}

func TestProfilesAreValid(t *testing.T) {
	for name, profile := range map[string]func() elector.Options{
		"Balanced": elector.Balanced, "DefaultOptions": elector.DefaultOptions,
		"FastFailover": elector.FastFailover, "LowTraffic": elector.LowTraffic,
	} {
		t.Run(name, func(t *testing.T) {
			o := named(profile())
			require.NoError(t, o.Validate())
			assert.Greater(t, o.SafeWindow(), o.RenewInterval+o.OperationTimeout)
			assert.Equal(t, o.LeaseDuration+o.RetryInterval+o.OperationTimeout, o.WorstCaseFailover())
		})
	}
	assert.Equal(t, 13*time.Second, elector.Balanced().WorstCaseFailover())
	assert.Equal(t, 2650*time.Millisecond, elector.FastFailover().WorstCaseFailover())
	assert.Equal(t, 70*time.Second, elector.LowTraffic().WorstCaseFailover())
	assert.Equal(t, elector.Balanced(), elector.DefaultOptions())
	// A profile alone lacks the identity fields.
	assert.ElementsMatch(t, []string{"Name", "Holder"}, fields(elector.Balanced().Validate()))
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(o *elector.Options)
		fields []string // the fields reported, in any order; none: valid
	}{
		{"valid", func(o *elector.Options) {}, nil},
		{"zero drift", func(o *elector.Options) { o.MaxClockDrift = 0 }, nil},
		{"empty name", func(o *elector.Options) { o.Name = "" }, []string{"Name"}},
		{"bad name byte", func(o *elector.Options) { o.Name = "a b" }, []string{"Name"}},
		{"long name", func(o *elector.Options) { o.Name = strings.Repeat("a", raftlease.MaxNameLen+1) }, []string{"Name"}},
		{"empty holder", func(o *elector.Options) { o.Holder = "" }, []string{"Holder"}},
		{"holder with space", func(o *elector.Options) { o.Holder = "a b" }, []string{"Holder"}},
		{"metadata key", func(o *elector.Options) { o.Metadata = map[string]string{"bad key": "v"} }, []string{"Metadata"}},
		{"metadata value", func(o *elector.Options) { o.Metadata = map[string]string{"k": "a\x00"} }, []string{"Metadata"}},
		{"lease too short", func(o *elector.Options) {
			o.LeaseDuration = raftlease.MinTTL - 1
		}, []string{"LeaseDuration"}},
		{"lease too long", func(o *elector.Options) { o.LeaseDuration = raftlease.MaxTTL + 1 }, []string{"LeaseDuration"}},
		{"renew zero", func(o *elector.Options) { o.RenewInterval = 0 }, []string{"RenewInterval"}},
		{"renew not below lease", func(o *elector.Options) { o.RenewInterval = o.LeaseDuration }, []string{"RenewInterval"}},
		{"retry zero", func(o *elector.Options) { o.RetryInterval = 0 }, []string{"RetryInterval"}},
		{"retry negative", func(o *elector.Options) { o.RetryInterval = -time.Second }, []string{"RetryInterval"}},
		{"op timeout zero", func(o *elector.Options) { o.OperationTimeout = 0 }, []string{"OperationTimeout"}},
		{"op timeout not below renew", func(o *elector.Options) { o.OperationTimeout = o.RenewInterval }, []string{"OperationTimeout"}},
		{"negative drift", func(o *elector.Options) { o.MaxClockDrift = -0.01 }, []string{"MaxClockDrift"}},
		{"drift half", func(o *elector.Options) { o.MaxClockDrift = 0.5 }, []string{"MaxClockDrift"}},
		{"drift NaN", func(o *elector.Options) { o.MaxClockDrift = math.NaN() }, []string{"MaxClockDrift"}},
		{"margin zero", func(o *elector.Options) { o.SafetyMargin = 0 }, []string{"SafetyMargin"}},
		{"margin eats the window", func(o *elector.Options) { o.SafetyMargin = 5 * time.Second }, []string{"LeaseDuration"}},
		{"drift eats the window", func(o *elector.Options) { o.MaxClockDrift = 0.49 }, []string{"LeaseDuration"}},
		{"renew too late to land", func(o *elector.Options) {
			o.RenewInterval, o.OperationTimeout = 8*time.Second, 2*time.Second // 10 s > 9.4 s
		}, []string{"LeaseDuration"}},
		{"window exactly renew+op", func(o *elector.Options) {
			o.MaxClockDrift, o.SafetyMargin = 0, 5*time.Second // window 5 s = 3 s + 2 s
		}, []string{"LeaseDuration"}},
		{"everything wrong", func(o *elector.Options) { *o = elector.Options{MaxClockDrift: 1} }, []string{
			"Name", "Holder", "LeaseDuration", "RenewInterval", "RetryInterval", "OperationTimeout", "MaxClockDrift", "SafetyMargin",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := named(elector.Balanced())
			tt.edit(&o)
			before := o
			err := o.Validate()
			assert.Equal(t, before.Metadata, o.Metadata)
			if tt.fields == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, raftlease.ErrInvalidArgument)
			assert.ElementsMatch(t, tt.fields, fields(err), "error: %v", err)
			for _, f := range tt.fields {
				assert.Contains(t, err.Error(), f+":")
			}
		})
	}
}

func TestValidateDoesNotMutate(t *testing.T) {
	o := named(elector.Options{Metadata: map[string]string{"k": "v"}})
	copyBefore := o
	_ = o.Validate()
	assert.Equal(t, copyBefore.Name, o.Name)
	assert.Equal(t, time.Duration(0), o.LeaseDuration, "no defaults filled in")
	assert.Equal(t, map[string]string{"k": "v"}, o.Metadata)
}
