-- Giving Pages: hosted donation pages an admin configures. The settings are one validated JSON document (the
-- page's texts, amounts, frequencies and defaults change together and are only read whole); the slug is the
-- page's address and unique.
CREATE TABLE giving_pages (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    active INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- One row per submission a page handed to the intake: the unguessable token in the thank-you page's address,
-- and the intent it became, so the thank-you page can show that intent's real status.
CREATE TABLE giving_donations (
    token TEXT PRIMARY KEY,
    page_id TEXT NOT NULL REFERENCES giving_pages (id),
    intent_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX giving_donations_page ON giving_donations (page_id, created_at);
