"""Media I/O for every journey: reading videos, image folders and images (`read`), writing them (`write`)."""
