"""The dockroll command line: parse, call the library, render."""
