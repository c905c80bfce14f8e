"""Each command's flow as one function: takes a Config and a cluster client, returns a typed report."""
