"""What people see: diagnostics as text and HTML, tables, batch progress. Pure functions of
results; IPython and ipywidgets are imported only inside the functions that show things."""
