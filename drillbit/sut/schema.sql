-- The trading API's schema. Idempotent: safe to apply on every start.
CREATE TABLE IF NOT EXISTS orders (
    id              bigserial PRIMARY KEY,
    client_order_id text        NOT NULL UNIQUE,
    symbol          text        NOT NULL,
    side            text        NOT NULL CHECK (side IN ('buy', 'sell')),
    price           numeric(18, 8) NOT NULL CHECK (price > 0),
    qty             bigint      NOT NULL CHECK (qty > 0),
    remaining       bigint      NOT NULL CHECK (remaining >= 0 AND remaining <= qty),
    status          text        NOT NULL CHECK (status IN ('open', 'partially_filled', 'filled', 'cancelled')),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Resting orders, in the order matching reads them (price-time priority per side).
CREATE INDEX IF NOT EXISTS orders_resting_bids ON orders (symbol, price DESC, id)
    WHERE side = 'buy' AND status IN ('open', 'partially_filled');
CREATE INDEX IF NOT EXISTS orders_resting_asks ON orders (symbol, price ASC, id)
    WHERE side = 'sell' AND status IN ('open', 'partially_filled');

CREATE TABLE IF NOT EXISTS trades (
    id            bigserial PRIMARY KEY,
    symbol        text        NOT NULL,
    price         numeric(18, 8) NOT NULL CHECK (price > 0),
    qty           bigint      NOT NULL CHECK (qty > 0),
    buy_order_id  bigint      NOT NULL REFERENCES orders (id),
    sell_order_id bigint      NOT NULL REFERENCES orders (id),
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS trades_symbol_id ON trades (symbol, id DESC);
-- Market data: each symbol's trades numbered 1, 2, 3... without gaps (assigned under the symbol's
-- matching lock, in the trade's own transaction), so a reader of the feed can tell a missed trade.
ALTER TABLE trades ADD COLUMN IF NOT EXISTS seq bigint;
CREATE UNIQUE INDEX IF NOT EXISTS trades_symbol_seq ON trades (symbol, seq);
CREATE INDEX IF NOT EXISTS trades_buy ON trades (buy_order_id);
CREATE INDEX IF NOT EXISTS trades_sell ON trades (sell_order_id);
