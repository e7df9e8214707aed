package admin

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/kong/go-kong/kong"
	"github.com/rs/zerolog"
)

// newGoKongClient starts the Admin API on a real loopback listener and
// returns a go-kong client pointed at it.
func newGoKongClient(t *testing.T) *kong.Client {
	t.Helper()
	ctx := context.Background()
	st := bootstrappedStore(t)
	srv := New(Config{Listen: "127.0.0.1:0", Version: "3.9.1", Logger: zerolog.New(zerolog.NewTestWriter(t))}, st, &recordingApplier{})
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	base := "http://" + srv.Addr().String()
	client, err := kong.NewClient(&base, http.DefaultClient)
	if err != nil {
		t.Fatalf("new go-kong client: %v", err)
	}
	return client
}

func TestGoKongServicesAndRoutes(t *testing.T) {
	ctx := context.Background()
	client := newGoKongClient(t)

	t.Run("root", func(t *testing.T) {
		root, err := client.Root(ctx)
		if err != nil {
			t.Fatalf("root: %v", err)
		}
		if v := kong.VersionFromInfo(root); v != "3.9.1" {
			t.Errorf("got version %q, want 3.9.1", v)
		}
	})
	var svcIDs []string
	t.Run("create services", func(t *testing.T) {
		for _, name := range []string{"a", "b", "c"} {
			svc, err := client.Services.Create(ctx, &kong.Service{Name: kong.String(name), Host: kong.String(name + ".test")})
			if err != nil {
				t.Fatalf("create %s: %v", name, err)
			}
			if svc.Port == nil || *svc.Port != 80 || svc.ID == nil {
				t.Fatalf("got %+v, want port 80 and an id", svc)
			}
			svcIDs = append(svcIDs, *svc.ID)
		}
	})
	t.Run("duplicate name", func(t *testing.T) {
		_, err := client.Services.Create(ctx, &kong.Service{Name: kong.String("a"), Host: kong.String("x.test")})
		var apiErr *kong.APIError
		if !errors.As(err, &apiErr) || apiErr.Code() != http.StatusConflict {
			t.Errorf("got %v, want a 409 conflict", err)
		}
	})
	t.Run("list size 1 then 2", func(t *testing.T) {
		page, next, err := client.Services.List(ctx, &kong.ListOpt{Size: 1})
		if err != nil || len(page) != 1 || next == nil {
			t.Fatalf("got %d services, next %v, err %v; want 1 and a next page", len(page), next, err)
		}
		next.Size = 2
		page, next, err = client.Services.List(ctx, next)
		if err != nil || len(page) != 2 || next != nil {
			t.Fatalf("got %d services, next %v, err %v; want 2 and no next page", len(page), next, err)
		}
		all, err := client.Services.ListAll(ctx)
		if err != nil || len(all) != 3 {
			t.Fatalf("got %d services, err %v; want 3", len(all), err)
		}
	})
	t.Run("update and get", func(t *testing.T) {
		_, err := client.Services.Update(ctx, &kong.Service{ID: kong.String(svcIDs[0]), Retries: kong.Int(9)})
		if err != nil {
			t.Fatalf("update: %v", err)
		}
		got, err := client.Services.Get(ctx, kong.String("a"))
		if err != nil || *got.Retries != 9 || *got.Host != "a.test" {
			t.Fatalf("got %+v, %v; want retries 9 and host kept", got, err)
		}
	})
	t.Run("routes", func(t *testing.T) {
		route, err := client.Routes.CreateInService(ctx, kong.String(svcIDs[0]),
			&kong.Route{Name: kong.String("r"), Paths: kong.StringSlice("/r")})
		if err != nil {
			t.Fatalf("create route: %v", err)
		}
		if route.StripPath == nil || !*route.StripPath || len(route.Protocols) != 2 {
			t.Errorf("got %+v, want Kong's defaults", route)
		}
		routes, _, err := client.Routes.ListForService(ctx, kong.String(svcIDs[0]), nil)
		if err != nil || len(routes) != 1 {
			t.Fatalf("got %d routes, %v; want 1", len(routes), err)
		}
		svc, err := client.Services.GetForRoute(ctx, route.ID)
		if err != nil || *svc.ID != svcIDs[0] {
			t.Fatalf("got %v, %v; want the route's service", svc, err)
		}
		ok, msg, err := client.Routes.Validate(ctx, &kong.Route{Paths: kong.StringSlice("~/(")})
		if ok || err != nil || msg == "" {
			t.Errorf("got ok %v, msg %q, err %v; want a schema violation", ok, msg, err)
		}
		if err := client.Routes.Delete(ctx, route.ID); err != nil {
			t.Fatalf("delete route: %v", err)
		}
	})
	t.Run("put with id (decK style)", func(t *testing.T) {
		id := "0f1b7a3e-5e3f-4c3a-8a4e-1f7c2b9d6e5a"
		svc, err := client.Services.Create(ctx, &kong.Service{ID: kong.String(id), Name: kong.String("deck"), Host: kong.String("d.test")})
		if err != nil || *svc.ID != id {
			t.Fatalf("got %v, %v; want id %s", svc, err, id)
		}
	})
	t.Run("delete", func(t *testing.T) {
		for _, id := range svcIDs {
			if err := client.Services.Delete(ctx, kong.String(id)); err != nil {
				t.Fatalf("delete %s: %v", id, err)
			}
		}
		_, err := client.Services.Get(ctx, kong.String(svcIDs[0]))
		if !kong.IsNotFoundErr(err) {
			t.Errorf("got %v, want not found", err)
		}
	})
}
