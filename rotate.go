package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/db"
)

// rotateBatchDefault is how many integrations one transaction re-seals.
const rotateBatchDefault = 200

// rotateKeyCommand re-seals every integration's CRM credentials under
// CRMHUB_SECRET_KEY, opening them with the key they were sealed with, which
// must be CRMHUB_SECRET_KEY or one of CRMHUB_OLD_SECRET_KEYS. The procedure:
// deploy with the new key as CRMHUB_SECRET_KEY and the old one in
// CRMHUB_OLD_SECRET_KEYS (servers then open both and seal new credentials
// under the new key), run rotate-key, then drop the old key. It works in
// batches, each its own transaction, and only replaces a row whose sealed
// value is unchanged since it was read, so it is safe while servers run,
// safe to interrupt, and a second run finds nothing to do.
func rotateKeyCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rotate-key", flag.ContinueOnError)
	batch := fs.Int("batch", rotateBatchDefault, "integrations re-sealed per transaction")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *batch < 1 {
		return errors.New("--batch must be at least 1")
	}
	return withPool(ctx, getenv, func(cfg *Config, _ *slog.Logger, pool *pgxpool.Pool) error {
		if cfg.SecretKey == "" {
			return errors.New("CRMHUB_SECRET_KEY is not set: set it to the new key and CRMHUB_OLD_SECRET_KEYS to the old one(s)")
		}
		sealer, err := auth.NewSealer(cfg.SecretKey, cfg.OldSecretKeys...)
		if err != nil {
			return err
		}
		res, err := rotateKeys(ctx, pool, sealer, *batch)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rotate-key: %d re-sealed under key %s, %d already under it, %d changed meanwhile (already new), %d could not be opened\n",
			res.resealed, sealer.KeyID(), res.alreadyCurrent, res.raced, len(res.failed))
		if len(res.failed) > 0 {
			ids := make([]string, len(res.failed))
			for i, id := range res.failed {
				ids[i] = strconv.FormatInt(id, 10)
			}
			return fmt.Errorf("credentials of integrations %s are sealed under a key that is in neither CRMHUB_SECRET_KEY nor CRMHUB_OLD_SECRET_KEYS: add it and run rotate-key again", strings.Join(ids, ", "))
		}
		return nil
	})
}

type rotateResult struct {
	resealed, alreadyCurrent, raced int
	failed                          []int64
}

// rotateKeys re-seals, batch by batch, every credential not under sealer's
// current key.
func rotateKeys(ctx context.Context, pool *pgxpool.Pool, sealer *auth.Sealer, batch int) (*rotateResult, error) {
	q := db.New(pool)
	res := &rotateResult{}
	var err error
	if res.alreadyCurrent, err = q.IntegrationCredentialsCountUnderKey(ctx, sealer.KeyID()); err != nil {
		return nil, err
	}
	var after int64
	for {
		rows, err := q.IntegrationCredentialsNotUnderKey(ctx, sealer.KeyID(), after, batch)
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 {
			return res, nil
		}
		after = rows[len(rows)-1].IntegrationID
		err = db.InTx(ctx, pool, func(tx pgx.Tx) error {
			qtx := q.WithTx(tx)
			for _, row := range rows {
				creds, err := sealer.OpenCredentials(row.OrgID, row.Sealed, row.KeyID)
				if err != nil {
					res.failed = append(res.failed, row.IntegrationID)
					continue
				}
				sealed, keyID, err := sealer.SealCredentials(row.OrgID, creds)
				if err != nil {
					return fmt.Errorf("error sealing credentials of integration %d: %w", row.IntegrationID, err)
				}
				changed, err := qtx.IntegrationCredentialsReseal(ctx, row, sealed, keyID)
				if err != nil {
					return err
				}
				if changed {
					res.resealed++
				} else {
					res.raced++
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("error re-sealing credentials after integration %d: %w", after, err)
		}
	}
}
