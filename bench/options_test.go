package main

import (
	"io"
	"slices"
	"strings"
	"testing"
)

func TestByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "256MiB", want: 256 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "64 MiB", want: 64 << 20},
		{in: "1000000", want: 1000000},
		{in: "3MB", want: 3000000},
		{in: "12B", want: 12},
		{in: "1.5GiB", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "MiB", wantErr: true},
		{in: "99999999999GiB", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var b byteSize
			err := b.Set(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %d, want an error", b)
				}
				return
			}
			if err != nil || int64(b) != tt.want {
				t.Fatalf("got %d (%v), want %d", b, err, tt.want)
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr []string
		check   func(t *testing.T, o options)
	}{
		{name: "defaults", check: func(t *testing.T, o options) {
			if o.rounds != 3 || o.size != 256<<20 || o.concurrency != 8 || o.duration.String() != "5s" {
				t.Errorf("got %d rounds, %d bytes, %d at once, %s; want 3, 256 MiB, 8, 5s", o.rounds, o.size, o.concurrency, o.duration)
			}
			if !slices.Equal(o.tests, allTests()) || !slices.Equal(o.targets, allTargets()) {
				t.Errorf("got tests %v and targets %v, want all", o.tests, o.targets)
			}
		}},
		{name: "only, in canonical order", args: []string{"-only", "download,get"}, check: func(t *testing.T, o options) {
			if want := []string{testGet, testDownload}; !slices.Equal(o.tests, want) {
				t.Errorf("got %v, want %v", o.tests, want)
			}
		}},
		{name: "rate settings", args: []string{"-max-rate", "9000", "-rate-duration", "2s"}, check: func(t *testing.T, o options) {
			if o.maxRate != 9000 || o.rateTime.String() != "2s" {
				t.Errorf("got %d req/s for %s, want 9000 for 2s", o.maxRate, o.rateTime)
			}
		}},
		{name: "rate bounds",
			args:    []string{"-max-rate", "-1", "-rate-duration", "11m"},
			wantErr: []string{"-max-rate: must be from 0", "-rate-duration: must be from 0 to 10m"}},
		{name: "every problem at once",
			args:    []string{"-rounds", "2", "-duration", "1500ms", "-only", "get,put", "-concurrency", "0"},
			wantErr: []string{"-rounds: must be at least 3", "-duration: must be a whole number", `-only: unknown name "put"`, "-concurrency: must be from 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args, io.Discard)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("got no error, want %q", tt.wantErr)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("got error %q, want it to contain %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			tt.check(t, o)
		})
	}
}
