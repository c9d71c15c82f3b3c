"""What the examples share (not examples themselves): the digits data, the common command-line options, figures."""
