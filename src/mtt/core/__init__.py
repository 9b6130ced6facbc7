"""The ground floor: the contracts every stage stands on (params base, data, preprocessing, model artifacts,
tracking, errors, output files) and the physics they share (events, kinematics, the ellipse method)."""
