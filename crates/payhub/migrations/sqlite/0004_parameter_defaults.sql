-- Per-account default values of the Vipps parameters of an intent (JSON: name -> {"value"} or {"payer_field"}).
ALTER TABLE accounts ADD COLUMN parameter_defaults TEXT NOT NULL DEFAULT '{}';
