"""Analysis of confirmed codings: agreement (`coefficients`: the pure measures over a units x
coders matrix; `agreement`: that matrix built from a study), frequency tables (`frequency`,
rendered by `tables`), charts (`chart`) and the HTML report (`report`)."""
