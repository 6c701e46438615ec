"""Tools an agent can call: typed Python functions turned into JSON-Schema specs, run with limits."""
